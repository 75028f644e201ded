"""The tag vocabulary and each photo's tags: where they come from, and what the owner decided.

* **Vocabulary**: tags in a hierarchy (``Places/Italy/Rome``; a photo tagged
  with a child is found by its parents), aliases, rename and merge (merging
  rewrites every link and keeps the decision history).
* **Sources**: keywords read from files become *accepted* tags (the owner
  wrote them); the caption model's tags are mapped onto the vocabulary
  (``tagging.vocabulary``: case, plurals, aliases, near-synonyms) and become
  *suggestions*; a term that matches nothing becomes a *proposed* tag, never
  silently a new one; the owner adds tags by hand.
* **Decisions** are sticky: a rejected tag never comes back from a re-run, an
  accepted one is never dropped. Every decision is kept (``TagDecision``) and
  one keystroke's decisions can be undone together.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from gallery.models import Photo
from tagging import vocabulary
from tagging.models import OwnerCaption, PhotoTag, Tag, TagAlias, TagDecision

State = PhotoTag.State
Source = PhotoTag.Source
MAX_NAME = 200


class TagError(ValueError):
    """A tag operation that cannot be done as asked (the message says why)."""


# -- the vocabulary -------------------------------------------------------------------


def clean_name(name: str) -> str:
    """A tag name as stored: one line, no path separators, bounded."""
    name = " ".join(str(name or "").replace("/", " ").replace("|", " ").split())
    if not name:
        raise TagError("a tag needs a name")
    return name[:MAX_NAME]


def for_path(parts: Iterable[str], *, status: str = Tag.Status.ACTIVE) -> Tag:
    """The tag at ``parts`` (``["Places", "Italy", "Rome"]``), made with its parents where missing.

    An existing tag is matched by path regardless of case. Making a tag
    ``active`` also makes a proposed tag of that path active.
    """
    names = [clean_name(p) for p in parts]
    if not names:
        raise TagError("a tag needs a name")
    parent = None
    tag = None
    for depth in range(1, len(names) + 1):
        path = "/".join(names[:depth])
        tag = Tag.objects.filter(path__iexact=path).first()
        if tag is None:
            try:
                with transaction.atomic():
                    tag = Tag.objects.create(name=names[depth - 1], parent=parent, path=path, status=status)
            except IntegrityError:  # made meanwhile by another process
                tag = Tag.objects.get(path=path)
        elif status == Tag.Status.ACTIVE and tag.status != Tag.Status.ACTIVE:
            Tag.objects.filter(pk=tag.pk).update(status=Tag.Status.ACTIVE)
            tag.status = Tag.Status.ACTIVE
        parent = tag
    return tag


def parse_path(text: str) -> list[str]:
    """What the owner typed (``Places/Italy/Rome`` or ``Places|Italy|Rome``) as path parts."""
    return vocabulary.split_hierarchy(str(text or ""))


def subtree(tag: Tag):
    """The tag and every tag below it."""
    return Tag.objects.filter(Q(pk=tag.pk) | Q(path__startswith=tag.path + "/"))


def load_vocabulary(*, synonyms: bool = True) -> vocabulary.Vocabulary:
    """Every tag (active and proposed) with its aliases, for mapping terms.

    ``synonyms`` adds the sentence-embedding model's near-synonyms (loaded once per
    process, ≈ 7 s: the worker's caption stage, not a web request).
    """
    aliases: dict[int, list[str]] = {}
    for alias, tag_id in TagAlias.objects.values_list("alias", "tag_id"):
        aliases.setdefault(tag_id, []).append(alias)
    entries = [
        vocabulary.Entry(tag_id=pk, path=path, name=name, aliases=tuple(aliases.get(pk, ())))
        for pk, path, name in Tag.objects.values_list("pk", "path", "name")
    ]
    return vocabulary.Vocabulary(entries, embed=_synonym_embedder() if synonyms else None)


def _synonym_embedder():
    if vocabulary.SYNONYM_THRESHOLD is None:
        return None
    from tagging import text_embeddings

    return text_embeddings.embed


def find(text: str) -> Tag | None:
    """The tag someone means by ``text``: a path, a name, or an alias (any case, plurals too)."""
    parts = parse_path(text)
    if not parts:
        return None
    tag = Tag.objects.filter(path__iexact="/".join(parts)).first()
    if tag is not None:
        return tag
    match = load_vocabulary(synonyms=False).match(parts[-1]) if len(parts) == 1 else None
    return Tag.objects.filter(pk=match.tag_id).first() if match is not None else None


def rename(tag: Tag, new_name: str) -> Tag:
    """Rename ``tag`` (its children's paths follow). A name another tag has is a merge, not a rename."""
    name = clean_name(new_name)
    path = (tag.parent.path + "/" if tag.parent_id else "") + name
    if Tag.objects.filter(path__iexact=path).exclude(pk=tag.pk).exists():
        raise TagError(f"a tag “{path}” exists already: merge the two instead")
    with transaction.atomic():
        _repath(tag, path)
        Tag.objects.filter(pk=tag.pk).update(name=name)
        TagAlias.objects.get_or_create(alias=vocabulary.normalize(tag.name), defaults={"tag": tag})
    tag.refresh_from_db()
    return tag


def _repath(tag: Tag, new_path: str) -> None:
    old = tag.path
    for child in Tag.objects.filter(path__startswith=old + "/"):
        Tag.objects.filter(pk=child.pk).update(path=new_path + child.path[len(old):])
    Tag.objects.filter(pk=tag.pk).update(path=new_path)


def merge(source: Tag, target: Tag, *, by=None) -> int:
    """Fold ``source`` into ``target``: every photo link, alias, child and past decision moves over.

    Where a photo has both, the owner's decision wins over a suggestion, and
    the target's decision over the source's. ``source``'s name becomes an
    alias of ``target``. Returns the photo links moved.
    """
    if source.pk == target.pk:
        raise TagError("a tag cannot be merged into itself")
    if target.path.startswith(source.path + "/"):
        raise TagError("a tag cannot be merged into one of its own children")
    moved = 0
    with transaction.atomic():
        theirs = {pt.photo_id: pt for pt in PhotoTag.objects.filter(tag=target)}
        for link in PhotoTag.objects.filter(tag=source):
            other = theirs.get(link.photo_id)
            if other is None:
                PhotoTag.objects.filter(pk=link.pk).update(tag=target)
                moved += 1
                continue
            if other.state == State.SUGGESTED and link.state != State.SUGGESTED:
                PhotoTag.objects.filter(pk=other.pk).update(
                    state=link.state, decided_by=link.decided_by, decided_at=link.decided_at, source=link.source)
            link.delete()
        for alias in TagAlias.objects.filter(tag=source):
            TagAlias.objects.filter(pk=alias.pk).update(tag=target)
        TagAlias.objects.get_or_create(alias=vocabulary.normalize(source.name), defaults={"tag": target})
        TagDecision.objects.filter(tag=source).update(tag=target)
        for child in Tag.objects.filter(parent=source):
            Tag.objects.filter(pk=child.pk).update(parent=target)
            if Tag.objects.filter(path__iexact=target.path + "/" + child.name).exists():
                merge(child, Tag.objects.get(path__iexact=target.path + "/" + child.name), by=by)
            else:
                child.refresh_from_db()
                _repath(child, target.path + "/" + child.name)
        if source.status == Tag.Status.ACTIVE and target.status != Tag.Status.ACTIVE:
            Tag.objects.filter(pk=target.pk).update(status=Tag.Status.ACTIVE)
        source.delete()
    return moved


def add_alias(tag: Tag, alias: str) -> TagAlias:
    word = vocabulary.normalize(alias)
    if not word:
        raise TagError("an alias needs a word")
    if Tag.objects.filter(name__iexact=word).exclude(pk=tag.pk).exists():
        raise TagError(f"“{word}” is a tag of its own: merge the two instead")
    existing = TagAlias.objects.filter(alias=word).first()
    if existing is not None and existing.tag_id != tag.pk:
        raise TagError(f"“{word}” already stands for {existing.tag.path}")
    return existing or TagAlias.objects.create(alias=word, tag=tag)


# -- where tags come from --------------------------------------------------------------


def import_file_keywords(photo_ids: Iterable[int]) -> int:
    """Keywords the files carry become accepted tags (hierarchy kept). Returns links made.

    A handful of queries for all the photos (a scan passes thousands), not a few for each.
    """
    cache: dict[str, Tag] = {}
    links: dict[tuple[int, int], str] = {}  # (photo, tag) → the keyword as the file spells it
    with_keywords = Photo.objects.filter(pk__in=list(photo_ids)).exclude(keywords=[])
    for pk, keywords in with_keywords.values_list("pk", "keywords"):
        for keyword in keywords or []:
            parts = vocabulary.split_hierarchy(keyword)
            if not parts:
                continue
            key = "/".join(parts).casefold()
            if key not in cache:
                cache[key] = for_path(parts)
            links.setdefault((pk, cache[key].pk), keyword)
    if not links:
        return 0
    near = PhotoTag.objects.filter(photo_id__in={p for p, _ in links}, tag_id__in={t for _, t in links})
    existing = {(p, t): link for link, p, t in near.values_list("pk", "photo_id", "tag_id") if (p, t) in links}
    # A suggestion the file now states becomes accepted; the owner's rejection stands.
    PhotoTag.objects.filter(pk__in=list(existing.values()), state=State.SUGGESTED).update(
        state=State.ACCEPTED, source=Source.FILE, decided_at=timezone.now())
    new = [PhotoTag(photo_id=p, tag_id=t, source=Source.FILE, state=State.ACCEPTED, term=keyword[:200])
           for (p, t), keyword in links.items() if (p, t) not in existing]
    PhotoTag.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def suggest_from_caption(photo_id: int, terms: Iterable[str], *, model: str, prompt_version: str,
                         vocab: vocabulary.Vocabulary | None = None) -> list[PhotoTag]:
    """The caption model's tags for one photo, mapped onto the vocabulary, as suggestions.

    Links the owner decided are left as they are (sticky); this model's
    earlier suggestions that it no longer makes are dropped.
    """
    vocab = vocab or load_vocabulary()
    words = [t for t in dict.fromkeys(str(t)[:MAX_NAME] for t in terms) if vocabulary.normalize(t)]
    matches = vocab.match_many(words)
    wanted: dict[int, str] = {}
    for word, match in zip(words, matches):
        if match is None:  # "dogs" with no dog tag: a proposed tag "dog"
            tag = for_path([vocabulary.singular(vocabulary.normalize(word))], status=Tag.Status.PROPOSED)
            wanted.setdefault(tag.pk, word)
        else:
            wanted.setdefault(match.tag_id, word)
    with transaction.atomic():
        PhotoTag.objects.filter(photo_id=photo_id, source=Source.CAPTION, state=State.SUGGESTED).exclude(
            tag_id__in=list(wanted)).delete()
        have = set(PhotoTag.objects.filter(photo_id=photo_id, tag_id__in=list(wanted)).values_list("tag_id", flat=True))
        PhotoTag.objects.bulk_create([
            PhotoTag(photo_id=photo_id, tag_id=tag_id, source=Source.CAPTION, state=State.SUGGESTED,
                     term=word, model=model, prompt_version=prompt_version)
            for tag_id, word in wanted.items() if tag_id not in have
        ], ignore_conflicts=True)
    return list(PhotoTag.objects.filter(photo_id=photo_id, tag_id__in=list(wanted)))


# -- the owner's decisions ---------------------------------------------------------------


def _record(links: list[PhotoTag], after: str, action: str, by, batch: uuid.UUID) -> int:
    """Set these links to ``after`` and write the history (one batch: undone together)."""
    changed = [link for link in links if link.state != after]
    if not changed:
        return 0
    now = timezone.now()
    PhotoTag.objects.filter(pk__in=[link.pk for link in changed]).update(
        state=after, decided_by=by if by and by.is_authenticated else None, decided_at=now, updated_at=now)
    paths = dict(Tag.objects.filter(pk__in={link.tag_id for link in changed}).values_list("pk", "path"))
    TagDecision.objects.bulk_create([
        TagDecision(photo_id=link.photo_id, tag_id=link.tag_id, tag_path=paths[link.tag_id], action=action,
                    before=link.state, after=after, by=by if by and by.is_authenticated else None, batch=batch)
        for link in changed
    ])
    return len(changed)


def decide(tag: Tag, photo_ids: Iterable[int], accept: bool, *, by=None, batch: uuid.UUID | None = None) -> int:
    """Accept or reject ``tag`` on these photos (their links must exist). Returns links changed."""
    batch = batch or uuid.uuid4()
    with transaction.atomic():
        links = list(PhotoTag.objects.select_for_update().filter(tag=tag, photo_id__in=list(photo_ids)))
        if accept and tag.status != Tag.Status.ACTIVE:
            for_path(tag.path.split("/"))  # accepting a proposed tag takes it into the vocabulary
        n = _record(links, State.ACCEPTED if accept else State.REJECTED, "accept" if accept else "reject", by, batch)
    _after_decisions([tag.pk], [link.photo_id for link in links])
    return n


def add(photo: Photo, text: str, *, by=None) -> PhotoTag:
    """The owner tags ``photo`` with ``text`` (an existing tag by name, path or alias, else a new one)."""
    tag = find(text) or for_path(parse_path(text))
    if tag.status != Tag.Status.ACTIVE:
        tag = for_path(tag.path.split("/"))
    batch = uuid.uuid4()
    with transaction.atomic():
        link, created = PhotoTag.objects.get_or_create(
            photo=photo, tag=tag, defaults={"source": Source.OWNER, "state": State.SUGGESTED, "term": text[:200]})
        if created:
            TagDecision.objects.create(photo=photo, tag=tag, tag_path=tag.path, action="add", before="",
                                       after=State.ACCEPTED, by=by if by and by.is_authenticated else None,
                                       batch=batch)
            PhotoTag.objects.filter(pk=link.pk).update(
                state=State.ACCEPTED, decided_by=by if by and by.is_authenticated else None,
                decided_at=timezone.now())
        else:
            _record([link], State.ACCEPTED, "add", by, batch)
    _after_decisions([tag.pk], [photo.pk])
    link.refresh_from_db()
    return link


def undo(by) -> int:
    """Revert ``by``'s newest batch of decisions that is not undone yet. Returns links restored."""
    with transaction.atomic():
        last = TagDecision.objects.select_for_update().filter(by=by, undone=False).order_by("-at", "-pk").first()
        if last is None:
            return 0
        rows = list(TagDecision.objects.filter(batch=last.batch, undone=False))
        restored = 0
        for row in rows:
            links = PhotoTag.objects.filter(photo_id=row.photo_id, tag_id=row.tag_id)
            if row.before:
                restored += links.update(state=row.before, decided_by=None if row.before == State.SUGGESTED else by,
                                         decided_at=timezone.now())
            else:
                restored += links.delete()[0]
        TagDecision.objects.filter(pk__in=[r.pk for r in rows]).update(undone=True)
    _after_decisions({r.tag_id for r in rows if r.tag_id}, [r.photo_id for r in rows])
    return restored


def can_undo(by) -> bool:
    return TagDecision.objects.filter(by=by, undone=False).exists()


def set_owner_caption(photo: Photo, text: str, *, by=None) -> OwnerCaption | None:
    """The owner's caption for ``photo``; empty text removes it (the model's shows again)."""
    from tagging import documents

    text = " ".join(str(text or "").split())
    if not text:
        OwnerCaption.objects.filter(photo=photo).delete()
        caption = None
    else:
        caption, _ = OwnerCaption.objects.update_or_create(
            photo=photo, defaults={"caption": text, "edited_by": by if by and by.is_authenticated else None})
    documents.refresh([photo.pk])
    return caption


def carry_over(old_id: int, new_id: int) -> None:
    """Photo ``old_id`` turned out to hold ``new_id``'s content (``gallery.runners.ON_MERGE``): what the
    owner decided on it moves over — each decided tag ``new_id`` has not decided itself, the history
    of those decisions, and the owner's caption unless ``new_id`` has one."""
    from tagging import documents

    theirs = {link.tag_id: link for link in PhotoTag.objects.filter(photo_id=new_id)}
    for link in PhotoTag.objects.filter(photo_id=old_id, decided_at__isnull=False):
        other = theirs.get(link.tag_id)
        if other is None:
            PhotoTag.objects.filter(pk=link.pk).update(photo_id=new_id)
        elif other.decided_at is None:
            PhotoTag.objects.filter(pk=other.pk).update(state=link.state, decided_by=link.decided_by_id,
                                                       decided_at=link.decided_at)
    TagDecision.objects.filter(photo_id=old_id).update(photo_id=new_id)
    if not OwnerCaption.objects.filter(photo_id=new_id).exists():
        OwnerCaption.objects.filter(photo_id=old_id).update(photo_id=new_id)
    documents.refresh([new_id])


def _after_decisions(tag_ids: Iterable[int], photo_ids: Iterable[int]) -> None:
    """Search documents follow the tags; tags with enough decisions are learned again (in the worker)."""
    from tagging import documents, learn

    documents.refresh(set(photo_ids))
    learn.queue_if_due(set(tag_ids))


# -- what a photo has -----------------------------------------------------------------


def photo_tags(photo: Photo) -> list[PhotoTag]:
    """A photo's tags, accepted first, then suggestions by score, then rejected."""
    order = {State.ACCEPTED: 0, State.SUGGESTED: 1, State.REJECTED: 2}
    links = list(PhotoTag.objects.filter(photo=photo).select_related("tag"))
    return sorted(links, key=lambda pt: (order[pt.state], -(pt.certainty if pt.certainty is not None else -99),
                                         pt.tag.path.casefold()))


def shown_captions(photo_ids: Iterable[int]) -> dict[int, str]:
    """The caption each photo shows: the owner's, else the newest model caption ("" for none)."""
    from tagging.models import Caption

    ids = list(photo_ids)
    owner = dict(OwnerCaption.objects.filter(photo_id__in=ids).values_list("photo_id", "caption"))
    model = dict(Caption.objects.filter(photo_id__in=ids).order_by("photo_id", "-created_at")
                 .distinct("photo_id").values_list("photo_id", "caption"))
    return {pk: owner.get(pk) or model.get(pk, "") for pk in ids}


def accepted_paths(photo_ids: Iterable[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for pk, path in (PhotoTag.objects.filter(photo_id__in=list(photo_ids), state=State.ACCEPTED)
                     .order_by("tag__path").values_list("photo_id", "tag__path")):
        out.setdefault(pk, []).append(path)
    return out


def matching(text: str) -> list[int]:
    """Ids of the tags a ``tag:`` filter means: the named tag(s) and all below them."""
    parts = parse_path(text)
    if not parts:
        return []
    wanted = "/".join(parts).casefold()
    roots = list(Tag.objects.filter(Q(path__iexact=wanted) | Q(name__iexact=parts[-1]) if len(parts) == 1
                                     else Q(path__iexact=wanted)))
    if len(parts) == 1:
        roots += [a.tag for a in TagAlias.objects.filter(alias=vocabulary.normalize(parts[0])).select_related("tag")]
    ids: set[int] = set()
    for root in roots:
        ids.update(subtree(root).values_list("pk", flat=True))
    return sorted(ids)
