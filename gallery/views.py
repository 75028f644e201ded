"""Gallery pages. Thin: each view checks access, calls a query or pipeline function, renders.

One URL serves the whole page and, for htmx requests, just the fragment
that changes (a ``#partial`` of the same template).
"""

from __future__ import annotations

import mimetypes
import os
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from gallery import browse, engine, libraries, scans, stages
from gallery.accounts import staff_required
from gallery.models import Library, Photo, SourceFile
from gallery.originals import OriginalMissing, open_original
from gallery.thumbnails import thumbnail_path

YEAR_SECONDS = 365 * 24 * 3600


@login_required
@require_GET
@vary_on_headers("HX-Request")
def grid(request):
    try:
        filters = browse.GridFilters.from_query(request.GET)
        page = browse.grid_page(filters, cursor=request.GET.get("after"))
    except ValueError as exc:
        return render(request, "gallery/grid.html", {"error": str(exc), "filters": None}, status=400)
    context = {"page": page, "filters": filters, "libraries": Library.objects.all()}
    if request.htmx and request.GET.get("after"):
        return render(request, "gallery/grid.html#tiles", context)
    context["years"] = browse.years(filters)
    context["folders"] = browse.folders(filters.library_id) if filters.library_id else []
    return render(request, "gallery/grid.html", context)


@login_required
@require_GET
def photo_detail(request, pk: int):
    photo = get_object_or_404(Photo, pk=pk)
    try:
        filters = browse.GridFilters.from_query(request.GET)
    except ValueError:
        filters = browse.GridFilters()
    context = {
        "photo": photo,
        "files": photo.files.select_related("library").order_by("missing", "id"),
        "prev": browse.neighbour(photo, filters, newer=True),
        "next": browse.neighbour(photo, filters, newer=False),
        "query": filters.as_query(),
        # Opening a photo asks for its full caption now, ahead of the background pace.
        "opened": engine.photo_opened(photo.pk),
        "stages": photo.stages.order_by("id"),
        "caption": photo.captions.shown_first().select_related("source__photo").first(),
    }
    return render(request, "gallery/photo.html", context)


@login_required
@require_GET
def thumbnail(request, content_hash: str, size: str):
    if size not in settings.THUMBNAIL_SIZES:
        raise Http404("no such thumbnail size")
    try:
        path = thumbnail_path(settings.THUMBNAIL_DIR, content_hash, size)
    except ValueError:
        raise Http404("no such thumbnail") from None
    if not path.is_file():
        # Named by its content hash, or by the quick hash it had before the thumbnail stage hashed it whole.
        photo = Photo.objects.filter(Q(content_hash=content_hash) | Q(quick_hash=content_hash)).first()
        if photo is None:
            raise Http404("no such photo")
        response = render(request, "gallery/placeholder.svg", {"photo": photo}, content_type="image/svg+xml")
        response["Cache-Control"] = "private, max-age=10"
        return response
    response = FileResponse(open(path, "rb"), content_type="image/jpeg")
    # The URL names the content hash, so the bytes behind it never change.
    response["Cache-Control"] = f"private, max-age={YEAR_SECONDS}, immutable"
    return response


@login_required
@require_GET
def original(request, file_id: int):
    sf = get_object_or_404(SourceFile.objects.select_related("library"), pk=file_id, outcome=SourceFile.Outcome.PHOTO)
    try:
        handle = open_original(sf)
    except OriginalMissing:
        raise Http404("the original file is not available") from None
    content_type = (sf.photo.mime_type if sf.photo else "") or mimetypes.guess_type(sf.relpath)[0]
    response = FileResponse(handle, content_type=content_type or "application/octet-stream")
    filename = os.path.basename(sf.relpath)
    response["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(filename, safe='')}"
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@staff_required
@vary_on_headers("HX-Request")
def library_list(request):
    if request.method == "POST":
        try:
            library, created = libraries.add_library(request.POST.get("path", ""), request.POST.get("name"))
        except libraries.LibraryError as exc:
            messages.error(request, str(exc))
        else:
            if scans.queue_scan(library):
                messages.success(request, f"{'Added' if created else 'Rescanning'} “{library.name}”: import queued.")
            else:
                messages.info(request, f"“{library.name}” is already being scanned.")
        return redirect("library_list")
    rows = browse.library_rows()
    context = {"libraries": rows, "busy": any(r["library"].is_busy for r in rows)}
    if request.htmx:
        response = render(request, "gallery/libraries.html#library-table", context)
        return response if context["busy"] else HttpResponseStopPolling(response.content)
    return render(request, "gallery/libraries.html", context)


@staff_required
@require_POST
def library_rescan(request, pk: int):
    library = get_object_or_404(Library, pk=pk)
    if scans.queue_scan(library):
        messages.success(request, f"Rescan of “{library.name}” queued.")
    else:
        messages.info(request, f"“{library.name}” is already being scanned.")
    return redirect("library_list")


@login_required
@require_GET
@vary_on_headers("HX-Request")
def jobs(request):
    context = browse.jobs_summary()
    if request.htmx and request.GET.get("poll"):
        if not context["busy"]:
            response = render(request, "gallery/jobs.html#progress", context)
            return HttpResponseStopPolling(response.content)
        return render(request, "gallery/jobs.html#progress", context)
    context["failures"] = engine.recent_failures()
    context["bad_files"] = (
        SourceFile.objects.exclude(outcome=SourceFile.Outcome.PHOTO).select_related("library").order_by("relpath")[:500]
    )
    return render(request, "gallery/jobs.html", context)


@staff_required
@require_POST
def jobs_retry(request, stage: str):
    spec = stages.find(stage)
    if spec is None:
        raise Http404("no such stage")
    n = engine.retry_failed(spec)
    messages.success(request, f"{n} photos queued again for {spec.title.lower()}.")
    return redirect(reverse("jobs"))


@staff_required
@require_POST
def jobs_reprocess(request, stage: str):
    spec = stages.find(stage)
    if spec is None or not spec.rerunnable:
        raise Http404("no such stage")
    n = engine.reprocess(spec)
    queued = len(engine.enqueue(spec))
    messages.success(request, f"{n} photos marked for {spec.title.lower()} with the configured model; {queued} queued.")
    return redirect("jobs")
