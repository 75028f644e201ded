"""People pages: everyone, one person, face crops, and the staff's "who is this?" queue.

Thin views over ``people.naming``. Reading is for everyone signed in;
changing anything is for staff (403 otherwise), by POST with a CSRF token.
A decision taken from the review queue (``review=1``) answers with the queue's
next board for htmx, or a redirect to it; elsewhere with a redirect back to
the person (or to whoever the faces went to).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from gallery import browse
from gallery.accounts import staff_required
from gallery.models import Photo
from people import crops, naming
from people.models import Face, Person

PERSON_FACES = 120  # faces shown on a person's page
REVIEW_FACES = 48  # faces shown for one cluster in the queue
FACE_FIELDS = ("id", "photo_id", "person_id", "locked", "size")  # what the face partial shows


def _person(pk: int) -> Person:
    return get_object_or_404(Person, pk=pk)


# -- reading ------------------------------------------------------------------------------------


@login_required
@require_GET
@vary_on_headers("HX-Request")
def people_list(request):
    hidden, after = request.GET.get("hidden") == "1", request.GET.get("after")
    try:
        listing = naming.people_listing(hidden=hidden, after=after)
    except ValueError as exc:
        return HttpResponse(str(exc), status=400)
    context = {**listing, "showing_hidden": hidden}
    if request.htmx and after:  # the next page of unnamed groups
        return render(request, "people/people.html#unnamed_cards", context)
    return render(request, "people/people.html", context)


@login_required
@require_GET
def person_names(request):
    """``<option>``s of existing names for a name field's datalist (completion while typing)."""
    typed = request.GET.get("name") or request.GET.get("into") or request.GET.get("to") or ""
    return render(request, "people/partials/name_options.html", {"names": naming.names(typed[:400])})


@login_required
@require_GET
@vary_on_headers("HX-Request")
def person_detail(request, pk: int):
    person = _person(pk)
    photos = Photo.objects.visible().filter(Exists(Face.objects.filter(photo=OuterRef("pk"), person=person)))
    try:
        page = browse.grid_page(browse.GridFilters(), cursor=request.GET.get("after"), base=photos)
    except ValueError as exc:
        return HttpResponse(str(exc), status=400)
    more_url = reverse("person_detail", args=[person.pk])
    if request.htmx and request.GET.get("after"):
        return render(request, "gallery/grid.html#tiles", {"page": page, "more_url": more_url})
    faces = list(person.faces.only(*FACE_FIELDS).order_by("-size", "pk")[:PERSON_FACES])
    context = {"person": person, "page": page, "more_url": more_url, "faces": faces,
               "more_faces": max(0, person.face_count - len(faces)),
               "photo_count": person.faces.values("photo_id").distinct().count()}
    return render(request, "people/person.html", context)


@login_required
@require_GET
def face_crop(request, pk: int):
    face = get_object_or_404(Face.objects.select_related("photo"), pk=pk)
    try:
        path = crops.face_crop(settings.THUMBNAIL_DIR, face.photo.content_hash, face.pk, face.box,
                               viewer="viewer")
    except ValueError:  # an unsafe content hash
        path = None
    except OSError:  # an unreadable thumbnail
        path = None
    if path is None:
        raise Http404("no crop for this face (its photo has no thumbnail yet)")
    response = FileResponse(open(path, "rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response


# -- the "who is this?" queue ---------------------------------------------------------------------


def _review_context(person: Person | None, error: str = "", typed: str = "") -> dict:
    if person is None:
        return {"person": None, "waiting": 0}
    faces = list(person.faces.only(*FACE_FIELDS).order_by("-size", "pk")[:REVIEW_FACES])
    following = naming.next_cluster(person)
    return {"person": person, "faces": faces, "more_faces": max(0, person.face_count - len(faces)),
            "waiting": naming.unnamed_clusters().count(), "error": error, "typed": typed[:naming.MAX_NAME],
            "next": following if following is not None and following.pk != person.pk else None}


@staff_required
@require_GET
def review_people(request):
    """The queue's first cluster (the biggest unnamed one), or word that nobody waits."""
    first = naming.next_cluster()
    if first is not None:
        return redirect("review_person", pk=first.pk)
    return render(request, "people/review_person.html", _review_context(None))


@staff_required
@require_GET
@vary_on_headers("HX-Request")
def review_person(request, pk: int):
    person = _person(pk)
    context = _review_context(person)
    return render(request, "people/review_person.html#board" if request.htmx else "people/review_person.html", context)


def _review_board(request, person: Person | None, *, error: str = "", typed: str = ""):
    """After a decision in the queue: ``person``'s board (htmx) or a redirect to it."""
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("review_person", pk=person.pk) if person else redirect("review_people")
    response = render(request, "people/review_person.html#board", _review_context(person, error, typed))
    return push_url(response, reverse("review_person", args=[person.pk]) if person else reverse("review_people"))


def _still_waiting(person: Person) -> Person | None:
    return naming.unnamed_clusters().filter(pk=person.pk).first()


def _from_review(request) -> bool:
    return request.POST.get("review") == "1"


def _refused(request, person: Person, exc: naming.NamingError, typed: str = ""):
    """A decision that could not be made: the reason on the queue's board, as a 400 for other htmx
    requests (tag views do the same), else as a message on the person's page."""
    if _from_review(request):
        return _review_board(request, _still_waiting(person) or naming.next_cluster(person), error=str(exc),
                             typed=typed)
    if request.htmx:
        return HttpResponse(str(exc), status=400)
    messages.error(request, str(exc))
    return _back(request, person)


def _back(request, person: Person | None, fallback: str = "people"):
    """Where a decision outside the queue returns: the person's page, else the People page."""
    if person is not None and Person.objects.filter(pk=person.pk).exists():
        return redirect("person_detail", pk=person.pk)
    return redirect(fallback)


# -- decisions (staff) -----------------------------------------------------------------------------


@staff_required
@require_POST
def person_name(request, pk: int):
    """Name a cluster or rename a person; a name someone has already merges into them."""
    person = _person(pk)
    typed = request.POST.get("name", "")
    try:
        holder = naming.name(person, typed)
    except naming.NamingError as exc:
        return _refused(request, person, exc, typed)
    if _from_review(request):
        return _review_board(request, naming.next_cluster(person))
    if holder.pk != person.pk:
        messages.success(request, f"Merged into {holder.name}.")
    return redirect("person_detail", pk=holder.pk)


@staff_required
@require_POST
def person_merge(request, pk: int):
    person = _person(pk)
    target = naming.find(request.POST.get("into", ""))
    try:
        if target is None:
            raise naming.NamingError("Nobody has that name: type the name of the person to merge into.")
        holder = naming.merge(person, target)
    except naming.NamingError as exc:
        return _refused(request, person, exc)
    messages.success(request, f"Merged into {holder.name or holder}.")
    return redirect("person_detail", pk=holder.pk)


@staff_required
@require_POST
def person_hide(request, pk: int):
    person = _person(pk)
    hidden = request.POST.get("hidden", "1") != "0"
    naming.hide(person, hidden)
    if _from_review(request):
        return _review_board(request, naming.next_cluster(person))
    messages.success(request, f"{person} is {'hidden from' if hidden else 'back on'} the People page.")
    return _back(request, person)


@staff_required
@require_POST
def person_faces_move(request, pk: int):
    """Move faces out of a person: ``action`` = remove (nobody), new (a new person) or move (to ``to``, a name)."""
    person = _person(pk)
    action = request.POST.get("action", "remove")
    to = {"remove": None, "new": naming.NEW}.get(action, request.POST.get("to", ""))
    if action not in ("remove", "new", "move"):
        return HttpResponse("action must be remove, new or move", status=400)
    try:
        moved, target = naming.move_faces(person, request.POST.getlist("face"), to)
    except naming.NamingError as exc:
        return _refused(request, person, exc)
    if _from_review(request):
        return _review_board(request, _still_waiting(person) or naming.next_cluster(person))
    where = f"to {target}" if target is not None else "out (they belong to nobody now)"
    messages.success(request, f"Moved {moved} face{'s' if moved != 1 else ''} {where}.")
    if Person.objects.filter(pk=person.pk).exists() or target is None:
        return _back(request, person)
    return redirect("person_detail", pk=target.pk)  # the cluster emptied: follow its faces
