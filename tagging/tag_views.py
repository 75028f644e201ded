"""Tags, a photo's tags and caption, and the review inbox. Thin views over ``tagging.tags`` and ``tagging.review``.

Reading tags is for everyone signed in; changing anything is for staff
(403 otherwise), by POST with a CSRF token. htmx requests get the fragment
that changed; the same URLs work without JavaScript (a redirect back).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Exists, OuterRef
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from gallery import browse
from gallery.accounts import staff_required
from gallery.models import Photo
from tagging import review, tags
from tagging.models import Caption, LearnedTag, OwnerCaption, PhotoTag, Tag

MAX_CAPTION = 2000


def _float(value, default: float | None = None) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number == number and abs(number) < 1e6 else default  # no NaN, no absurd values


def _ids(values) -> list[int]:
    out = []
    for value in values:
        try:
            out.append(int(value))
        except (TypeError, ValueError):
            continue
    return [pk for pk in out if 0 < pk < 2**63][:1000]


# -- the vocabulary ------------------------------------------------------------------------


@login_required
@require_GET
@vary_on_headers("HX-Request")
def tag_list(request):
    """Every tag by path, a page of ``review.TAG_PAGE`` at a time (htmx loads the next as it comes into view)."""
    rows, after = review.tag_list_page(request.GET.get("after", ""))
    context = {"rows": rows, "after": after}
    if request.htmx and request.GET.get("after"):
        return render(request, "tagging/tags.html#rows", context)
    return render(request, "tagging/tags.html", context)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def tag_detail(request, path: str):
    tag = get_object_or_404(Tag, path__iexact=path.strip("/"))
    links = PhotoTag.objects.filter(state=PhotoTag.State.ACCEPTED, tag__in=tags.subtree(tag))
    tagged = Photo.objects.visible().filter(Exists(links.filter(photo=OuterRef("pk"))))
    small = None
    if review.photos_with(tag) < browse.COLLECT_BELOW:  # a rare tag: sort its photos, don't walk the library
        small = Photo.objects.visible().among(links.values("photo_id"))
    try:
        page = browse.grid_page(browse.GridFilters(), cursor=request.GET.get("after"), base=tagged, small_base=small)
    except ValueError as exc:
        return HttpResponse(str(exc), status=400)
    more_url = reverse("tag_detail", args=[tag.path])
    if request.htmx and request.GET.get("after"):
        return render(request, "gallery/grid.html#tiles", {"page": page, "more_url": more_url})
    context = {
        "tag": tag, "page": page, "more_url": more_url,
        "counts": review.decided(tag), "learned": LearnedTag.objects.filter(tag=tag).first(),
        "aliases": tag.aliases.order_by("alias"), "children": tag.children.order_by("name"),
    }
    return render(request, "tagging/tag.html", context)


def _tag_action(request, pk: int, action):
    tag = get_object_or_404(Tag, pk=pk)
    try:
        result = action(tag)
    except tags.TagError as exc:
        messages.error(request, str(exc))
        return redirect("tag_detail", path=tag.path)
    if isinstance(result, str):
        messages.success(request, result)
    tag = Tag.objects.filter(pk=pk).first()
    return redirect("tag_detail", path=tag.path) if tag else redirect("tag_list")


@staff_required
@require_POST
def tag_rename(request, pk: int):
    return _tag_action(request, pk, lambda tag: f"Renamed to “{tags.rename(tag, request.POST.get('name', '')).path}”.")


@staff_required
@require_POST
def tag_merge(request, pk: int):
    def merge(tag):
        target = tags.find(request.POST.get("into", ""))
        if target is None:
            raise tags.TagError("no tag of that name to merge into")
        moved = tags.merge(tag, target, by=request.user)
        return f"Merged into “{target.path}” ({moved} photos moved)."
    response = _tag_action(request, pk, merge)
    target = tags.find(request.POST.get("into", ""))
    return redirect("tag_detail", path=target.path) if target and not Tag.objects.filter(pk=pk).exists() else response


@staff_required
@require_POST
def tag_alias(request, pk: int):
    return _tag_action(request, pk, lambda tag: f"“{tags.add_alias(tag, request.POST.get('alias', '')).alias}” "
                                                f"now stands for {tag.path}.")


@staff_required
@require_POST
def tag_activate(request, pk: int):
    return _tag_action(request, pk, lambda tag: f"“{tags.for_path(tag.path.split('/')).path}” is in the vocabulary.")


# -- one photo's tags and caption -----------------------------------------------------------


def _photo_tags_response(request, photo: Photo):
    standalone = request.POST.get("standalone") == "1"  # the by-photo review page, not the photo page
    if request.htmx:
        return render(request, "tagging/partials/photo_tags.html", photo_tags_context(photo, standalone=standalone))
    return redirect("review_photo" if standalone else "photo_detail", pk=photo.pk)


def photo_tags_context(photo: Photo, *, standalone: bool = False) -> dict:
    return {"photo": photo, "photo_tags": tags.photo_tags(photo), "standalone": standalone,
            "owner_caption": OwnerCaption.objects.filter(photo=photo).first(),
            "model_caption": Caption.objects.filter(photo=photo).order_by("-created_at").first()}


@login_required
@require_GET
@vary_on_headers("HX-Request")
def photo_tags(request, pk: int):
    """The photo page's tags (loaded by htmx), or a page of its own."""
    photo = get_object_or_404(Photo, pk=pk)
    if request.htmx:
        return render(request, "tagging/partials/photo_tags.html", photo_tags_context(photo))
    return render(request, "tagging/review_photo.html", photo_tags_context(photo, standalone=True))


@staff_required
@require_POST
def photo_tag_add(request, pk: int):
    photo = get_object_or_404(Photo, pk=pk)
    text = request.POST.get("tag", "")[:500]
    try:
        tags.add(photo, text, by=request.user)
    except tags.TagError as exc:
        if request.htmx:
            return HttpResponse(str(exc), status=400)
        messages.error(request, str(exc))
    return _photo_tags_response(request, photo)


@staff_required
@require_POST
def photo_tag_decide(request, pk: int, tag_id: int, decision: str):
    if decision not in ("accept", "reject"):
        raise Http404("no such decision")
    photo = get_object_or_404(Photo, pk=pk)
    tag = get_object_or_404(Tag, pk=tag_id)
    get_object_or_404(PhotoTag, photo=photo, tag=tag)
    tags.decide(tag, [photo.pk], decision == "accept", by=request.user)
    return _photo_tags_response(request, photo)


@staff_required
@require_POST
def photo_caption(request, pk: int):
    """The owner's caption (empty: back to the model's)."""
    photo = get_object_or_404(Photo, pk=pk)
    tags.set_owner_caption(photo, request.POST.get("caption", "")[:MAX_CAPTION], by=request.user)
    return _photo_tags_response(request, photo)


# -- the review inbox -------------------------------------------------------------------------


@staff_required
@require_GET
def review_index(request):
    from people import naming

    return render(request, "tagging/review.html", {"queue": review.tag_queue(), "next_photo": review.next_photo(),
                                                   "people_waiting": naming.unnamed_clusters().count()})


def _review_tag_context(request, tag: Tag) -> dict:
    counts = review.decided(tag)
    return {
        "tag": tag, "suggestions": review.suggestions(tag), "pending": counts[PhotoTag.State.SUGGESTED],
        "counts": counts, "next": review.next_tag(tag),
        "learned": LearnedTag.objects.filter(tag=tag).first(),
        "can_undo": tags.can_undo(request.user),
    }


@staff_required
@require_GET
@vary_on_headers("HX-Request")
def review_tag(request, pk: int):
    tag = get_object_or_404(Tag, pk=pk)
    context = _review_tag_context(request, tag)
    if request.htmx:
        return render(request, "tagging/review_tag.html#board", context)
    return render(request, "tagging/review_tag.html", context)


def _board(request, tag: Tag):
    if request.htmx:
        return render(request, "tagging/review_tag.html#board", _review_tag_context(request, tag))
    return redirect("review_tag", pk=tag.pk)


@staff_required
@require_POST
def review_decide(request, pk: int):
    tag = get_object_or_404(Tag, pk=pk)
    action = request.POST.get("action")
    if action not in ("accept", "reject"):
        return HttpResponse("action must be accept or reject", status=400)
    ids = _ids(request.POST.getlist("photo"))
    tags.decide(tag, ids, action == "accept", by=request.user, batch=uuid.uuid4())
    return _board(request, tag)


@staff_required
@require_POST
def review_undo(request):
    tags.undo(request.user)
    tag = Tag.objects.filter(pk__in=_ids([request.POST.get("tag")])).first()
    return _board(request, tag) if tag is not None else redirect("review")


@staff_required
@require_GET
def review_bulk_preview(request, pk: int):
    tag = get_object_or_404(Tag, pk=pk)
    accept = request.GET.get("action") == "accept"
    threshold = _float(request.GET.get("threshold"))
    if threshold is None:
        return HttpResponse("Give a score.", status=200)
    n = review.bulk_preview(tag, accept, threshold)
    verb = "accept" if accept else "reject"
    side = "at or above" if accept else "below"
    return HttpResponse(f"{verb.capitalize()} {n} photo{'s' if n != 1 else ''} scored {side} {threshold:g}.")


@staff_required
@require_POST
def review_bulk(request, pk: int):
    tag = get_object_or_404(Tag, pk=pk)
    threshold = _float(request.POST.get("threshold"))
    if threshold is None:
        return HttpResponse("Give a score.", status=400)
    review.bulk(tag, request.POST.get("action") == "accept", threshold, by=request.user)
    return _board(request, tag)


@staff_required
@require_GET
def review_next_photo(request):
    after = _ids([request.GET.get("after", "0")])
    pk = review.next_photo(after[0] if after else 0)
    if pk is None:
        messages.info(request, "No photo has tags waiting for a decision.")
        return redirect("review")
    return redirect("review_photo", pk=pk)


@staff_required
@require_GET
def review_photo(request, pk: int):
    photo = get_object_or_404(Photo, pk=pk)
    context = photo_tags_context(photo, standalone=True)
    context["next_url"] = f"{reverse('review_next_photo')}?after={photo.pk}"
    return render(request, "tagging/review_photo.html", context)


# -- exporting metadata to the files ------------------------------------------------------------


def _export_options(request):
    from tagging import export_jobs

    return export_jobs.ExportOptions(embedded=request.POST.get("mode") == "embedded",
                                     naming=request.POST.get("naming") or "darktable")


@staff_required
@require_POST
def photo_export(request, pk: int):
    """Preview (dry run, here and now) or queue the export of one photo's metadata."""
    from tagging import export_jobs

    photo = get_object_or_404(Photo, pk=pk)
    try:
        options = _export_options(request)
    except ValueError as exc:
        return HttpResponse(str(exc), status=400)
    if request.POST.get("preview"):
        results = export_jobs.export_photo(photo, options, dry_run=True)
        return render(request, "tagging/partials/export_preview.html", {"results": results, "options": options})
    queued = export_jobs.queue([photo.pk], options)
    message = ("Export queued: the worker writes it; progress and any failure are on the Jobs page."
               if queued else "An export of this photo is already under way.")
    if request.htmx:
        return HttpResponse(f'<p class="notice">{message}</p>')
    messages.success(request, message)
    return redirect("photo_detail", pk=photo.pk)


def _queue_export(request, photo_ids, back: str):
    """Hand these photos' export to the worker with the options of the form; back to ``back``."""
    from tagging import export_jobs

    try:
        options = _export_options(request)
        queued = export_jobs.queue(list(photo_ids()), options)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Export of {queued} photos queued; progress is on the Jobs page.")
    return redirect(back)


@staff_required
@require_POST
def tag_export(request, pk: int):
    """Queue the export of every photo with this tag (or a tag below it)."""
    from tagging import export_jobs

    tag = get_object_or_404(Tag, pk=pk)
    return _queue_export(request, lambda: export_jobs.select(tag=tag.path).values_list("pk", flat=True),
                         reverse("tag_detail", args=[tag.path]))


@staff_required
@require_POST
def library_export(request, pk: int):
    """Queue the export of every photo with a file in this library."""
    from gallery.models import Library
    from tagging import export_jobs

    library = get_object_or_404(Library, pk=pk)
    return _queue_export(request, lambda: export_jobs.select().in_library(library.pk).values_list("pk", flat=True),
                         reverse("library_list"))


@staff_required
@require_POST
def search_export(request):
    """Queue the export of the photos a search finds (up to 500): the selection the owner made by searching."""
    from tagging import search as search_module

    q = request.POST.get("q", "")[:1000]
    return _queue_export(request, lambda: [r.photo.pk for r in search_module.search(q, limit=500).results],
                         f"{reverse('search')}?{urlencode({'q': q})}")
