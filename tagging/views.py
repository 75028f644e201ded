"""Search, similar photos and near-duplicates. Thin views over tagging modules."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from gallery import browse
from gallery.accounts import staff_required
from gallery.models import Library, Photo
from tagging import near_duplicates, query, uploads
from tagging import search as search_module


def _search_context(request, response, q: str, include_weak: bool) -> dict:
    return {
        "q": q,
        "response": response,
        "include_weak": include_weak,
        "chips": response.query.describe() if q else [],
        "libraries": Library.objects.all(),
        "years": browse.years(browse.GridFilters()),
    }


@login_required
@require_GET
@vary_on_headers("HX-Request")
def search(request):
    q = request.GET.get("q", "")
    if any(request.GET.get(name) for name, _ in query.FORM_FILTERS) or request.GET.get("gps"):
        # The filter controls become query syntax in a canonical, shareable URL.
        return redirect(f"{reverse('search')}?{urlencode({'q': query.with_form_filters(q, request.GET)})}")
    include_weak = request.GET.get("more") == "1"
    response = search_module.search(q, include_weak=include_weak)
    context = _search_context(request, response, q, include_weak)
    if request.htmx:
        return render(request, "tagging/search.html#content", context)
    return render(request, "tagging/search.html", context)


@login_required
@require_POST
@csrf_exempt  # checked below, once the upload handlers are in place (reading the token reads the body)
def search_image(request):
    """Search with an uploaded image. The body is capped before it is read: a request that says or
    turns out to be larger than the limit is refused without being spooled."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isdigit() and int(length) > uploads.MAX_UPLOAD_BYTES + 65536:
        return render(request, "tagging/search.html",
                      {"q": "", "upload_error": uploads.too_large_message(int(length))}, status=413)
    limiter = uploads.LimitedUpload(request)
    request.upload_handlers.insert(0, limiter)
    response = _search_image(request)
    if limiter.too_large:
        return render(request, "tagging/search.html",
                      {"q": "", "upload_error": uploads.too_large_message(limiter.received)}, status=413)
    return response


@csrf_protect
def _search_image(request):
    upload = request.FILES.get("image")
    include_weak = request.POST.get("more") == "1"
    if upload is None:
        return render(request, "tagging/search.html", {"q": "", "upload_error": "Choose an image to search with."},
                      status=400)
    try:
        image = uploads.open_uploaded_image(upload)
    except uploads.UploadError as exc:
        return render(request, "tagging/search.html", {"q": "", "upload_error": str(exc)}, status=400)
    with image:
        response = search_module.search_by_image(image, include_weak=include_weak)
    context = _search_context(request, response, "", include_weak)
    context["by_image"] = upload.name
    return render(request, "tagging/search.html", context)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def similar(request, pk: int):
    photo = get_object_or_404(Photo, pk=pk)
    include_weak = request.GET.get("more") == "1"
    results = search_module.similar_photos(photo, include_weak=include_weak)
    template = "tagging/similar.html#similar" if request.htmx else "tagging/similar.html"
    return render(request, template, {"photo": photo, "results": results, "include_weak": include_weak})


@login_required
@require_GET
def duplicates(request):
    return render(request, "tagging/duplicates.html", near_duplicates.page_context())


@staff_required
@require_POST
def duplicates_refresh(request):
    near_duplicates.queue_refresh()
    messages.success(request, "Looking for near-duplicates in the background; reload this page in a while.")
    return redirect("duplicates")
