"""The owner's decisions about people: name, rename, merge, move a wrong face out, hide.

Plain functions that views (and anything else) call. Each one runs in one
transaction, locks the persons it changes (``SELECT … FOR UPDATE``, in id
order, so two decisions about the same people wait for each other instead of
deadlocking), calls ``Person.refresh`` for every person whose faces changed,
and hands the photos whose people changed to the ``PHOTOS_CHANGED`` hooks (the
tagging app rebuilds their search documents there: ``people`` does not import
``tagging``).

A face the owner placed (named with its cluster, merged, moved) becomes
``locked``: clustering never moves it again.

Everything a user typed is checked here: ``NamingError`` carries a sentence to
show. Names are cleaned (control characters out, NFC, runs of whitespace as
one space) and at most ``MAX_NAME`` characters; a name matches another
person's case-insensitively, as the database's unique index on
``lower(name)`` does.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Value
from django.db.models.functions import Lower

from people.models import Face, Person

MAX_NAME = 200  # Person.name's max_length
MAX_FACES = 1000  # faces moved by one decision
NEW = "new"  # move_faces(to=NEW): a new unnamed person of their own
UNNAMED_PAGE = 120  # unnamed groups per page of the People page (more load as you scroll)

# Called with the ids of photos whose people changed (after the change, inside its transaction).
PHOTOS_CHANGED: list[Callable[[list[int]], object]] = []

# Control characters (whitespace among them becomes a space), lone surrogates, bidi overrides.
_CLEAN = {cp: (" " if chr(cp).isspace() else None) for cp in (*range(0x00, 0x20), *range(0x7F, 0xA0))}
_CLEAN.update({cp: None for cp in range(0xD800, 0xE000)})
_CLEAN.update({cp: None for cp in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))})


class NamingError(ValueError):
    """A decision that cannot be made as asked; ``str()`` says why, for the owner."""


def clean_name(text: object) -> str:
    """The name as stored: cleaned, or ``NamingError`` when empty or too long."""
    text = "" if text is None else str(text)
    if len(text) > 4 * MAX_NAME:  # no need to normalise a megabyte to refuse it
        raise NamingError(f"A name can have at most {MAX_NAME} characters.")
    name = " ".join(unicodedata.normalize("NFC", text.translate(_CLEAN)).split())
    if not name:
        raise NamingError("Type a name.")
    if len(name) > MAX_NAME:
        raise NamingError(f"A name can have at most {MAX_NAME} characters.")
    return name


def by_name(name: str):
    """Persons with this name, ignoring case: at most one (the unique index on lower(name) serves it)."""
    return Person.objects.alias(lname=Lower("name")).filter(lname=Lower(Value(name))).exclude(name="")


def find(name: object) -> Person | None:
    """The person with this name (cleaned as a typed name is), ignoring case."""
    try:
        name = clean_name(name)
    except NamingError:
        return None
    return by_name(name).first()


def names(prefix: object = "", *, limit: int = 20) -> list[str]:
    """Names of people that start with ``prefix`` (then those containing it), most faces first."""
    text = " ".join(str(prefix or "").translate(_CLEAN).split())[:MAX_NAME]
    named = Person.objects.exclude(name="")
    if not text:
        return list(named.order_by("-face_count", "name").values_list("name", flat=True)[:limit])
    found = list(named.filter(name__istartswith=text).order_by("-face_count", "name").values_list("name", flat=True)[:limit])
    if len(found) < limit:
        found += [n for n in named.filter(name__icontains=text).exclude(name__istartswith=text)
                  .order_by("-face_count", "name").values_list("name", flat=True)[: limit - len(found)]]
    return found


def _locked(*persons: Person) -> list[Person]:
    """The persons again, locked for this transaction, in the order given (missing ones: NamingError)."""
    ids = sorted({p.pk for p in persons})
    rows = {p.pk: p for p in Person.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    if len(rows) != len(ids):
        raise NamingError("That person is no longer there (merged or removed meanwhile).")
    return [rows[p.pk] for p in persons]


def changed(person_ids: Iterable[int | None], photo_ids: Iterable[int]) -> None:
    """Recount these persons and hand the photos to the ``PHOTOS_CHANGED`` hooks: the end of every
    decision here, and for code that moves faces some other way (the admin; clustering, when a face
    joins a named person, so that the name becomes searchable in that photo at once)."""
    Person.refresh(person_ids)
    photos = sorted(set(photo_ids))
    if photos:
        for hook in PHOTOS_CHANGED:
            hook(photos)


def _photos_of(person: Person) -> list[int]:
    return list(Face.objects.filter(person=person).values_list("photo_id", flat=True).distinct())


@transaction.atomic
def name(person: Person, text: object) -> Person:
    """Give ``person`` a name (an unnamed cluster) or a new one (rename).

    If another person already has that name, ``person`` is merged into them:
    naming a cluster "Ann" when Ann exists adds these faces to Ann. Either way
    the faces are the owner's now (locked). Returns the person who holds the
    faces afterwards.
    """
    new_name = clean_name(text)
    [person] = _locked(person)
    other = find(new_name)
    if other is not None and other.pk != person.pk:
        return _merge(person, other)
    person.name = new_name
    try:
        with transaction.atomic():  # a savepoint: someone may have taken the name a moment ago
            person.save(update_fields=["name", "updated_at"])
    except IntegrityError:
        raise NamingError(f"“{new_name}” was just given to someone else; try again to merge.") from None
    Face.objects.filter(person=person, locked=False).update(locked=True)
    changed([person.pk], _photos_of(person))
    return person


rename = name  # the same decision: a new name, merging when someone already has it


@transaction.atomic
def merge(source: Person, target: Person) -> Person:
    """Move every face of ``source`` to ``target`` and remove ``source``. Returns ``target``.

    If only ``source`` had a name, ``target`` takes it.
    """
    if source.pk == target.pk:
        raise NamingError("A person cannot be merged into themselves.")
    return _merge(source, target)


def _merge(source: Person, target: Person) -> Person:
    source, target = _locked(source, target)
    photos = _photos_of(source)
    Face.objects.filter(person=source).update(person=target, locked=True)
    kept_name = source.name if not target.name else ""
    source.delete()
    if kept_name:
        target.name = kept_name
        target.save(update_fields=["name", "updated_at"])
    changed([target.pk], photos)
    return Person.objects.get(pk=target.pk)


@transaction.atomic
def move_faces(person: Person, face_ids: Iterable[object], to: Person | str | None) -> tuple[int, Person | None]:
    """Move some of ``person``'s faces out: to another person, a person by name, a new person, or nobody.

    ``to`` is a ``Person``; a name (the person of that name, created if there
    is none); ``NEW`` (a new unnamed person holding just these faces); or
    ``None`` (nobody: the faces stay in their photos, belonging to no one, and
    clustering leaves them there). Face ids that are not ``person``'s are
    ignored. Returns (faces moved, the person they went to).
    """
    ids = _ids(face_ids)
    if not ids:
        raise NamingError("Choose the faces to move.")
    [person] = _locked(person)
    faces = Face.objects.filter(person=person, pk__in=ids)
    if not faces.exists():
        raise NamingError("None of those faces belongs to this person.")
    if to is NEW or to == NEW:
        target = Person.objects.create()
    elif isinstance(to, Person):
        if to.pk == person.pk:
            raise NamingError("Those faces are already this person's.")
        target = _locked(to)[0]
    elif to is None:
        target = None
    else:
        new_name = clean_name(to)
        target = find(new_name)
        if target is None:
            target = Person.objects.create(name=new_name)
        elif target.pk == person.pk:
            raise NamingError("Those faces are already this person's.")
    photos = list(faces.values_list("photo_id", flat=True))
    moved = faces.update(person=target, locked=True)
    changed([person.pk, target.pk if target else None], photos)
    return moved, target


@transaction.atomic
def hide(person: Person, hidden: bool = True) -> Person:
    """Keep a person off the People page and the review queue (or bring them back)."""
    [person] = _locked(person)
    person.hidden = bool(hidden)
    person.save(update_fields=["hidden", "updated_at"])
    changed([person.pk], [])
    return Person.objects.filter(pk=person.pk).first() or person


# -- what the pages list -----------------------------------------------------------------------


def unnamed_clusters():
    """Unnamed, visible clusters, biggest first: the "who is this?" queue (the person_listing index)."""
    return Person.objects.filter(hidden=False, name="", face_count__gt=0).order_by("-face_count", "pk")


def next_cluster(after: Person | None = None) -> Person | None:
    """The next unnamed cluster in queue order after ``after`` (by its size and id then), wrapping around."""
    queue = unnamed_clusters()
    if after is None:
        return queue.first()
    later = queue.filter(Q(face_count__lt=after.face_count) | Q(face_count=after.face_count, pk__gt=after.pk))
    return later.exclude(pk=after.pk).first() or queue.exclude(pk=after.pk).first()


def people_listing(*, hidden: bool = False, after: str | None = None, named_limit: int = 2000) -> dict:
    """The People page: named persons by name, then a page of unnamed clusters by size (from the cursor
    ``after``; hidden ones instead, on request). A malformed cursor: ValueError."""
    base = Person.objects.filter(hidden=hidden)  # a card needs cover_id only: no join
    named = base.exclude(name="").order_by(Lower("name"), "pk")
    counts = dict(Person.objects.values_list("hidden").annotate(n=Count("pk")).order_by())
    unnamed, cursor = unnamed_page(hidden=hidden, after=after)
    return {"named": list(named[:named_limit]), "unnamed": unnamed, "unnamed_cursor": cursor,
            "unnamed_total": base.filter(name="", face_count__gt=0).count(), "hidden_total": counts.get(True, 0)}


def unnamed_page(*, hidden: bool = False, after: str | None = None, limit: int | None = None
                 ) -> tuple[list[Person], str | None]:
    """One page of unnamed clusters, largest first, after the keyset cursor ``"<face count>_<id>"`` (no
    OFFSET); returns the page and the next cursor (None at the end). A malformed cursor: ValueError."""
    qs = Person.objects.filter(hidden=hidden, name="", face_count__gt=0).order_by("-face_count", "pk")
    if after:
        try:
            count, pk = (int(part) for part in after.split("_"))
        except ValueError:
            raise ValueError("malformed page cursor") from None
        if not (0 <= count < 2**31 and 0 <= pk < 2**63):
            raise ValueError("malformed page cursor")
        qs = qs.filter(Q(face_count__lt=count) | Q(face_count=count, pk__gt=pk))
    limit = limit or UNNAMED_PAGE
    page = list(qs[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, (f"{page[-1].face_count}_{page[-1].pk}" if more else None)


def _ids(values: Iterable[object]) -> list[int]:
    out = []
    for value in values:
        try:
            pk = int(str(value).strip())
        except (TypeError, ValueError):
            continue
        if 0 < pk < 2**63:
            out.append(pk)
    return out[:MAX_FACES]
