"""Refusing request values that no view can use before any view runs."""

from __future__ import annotations

from django.http import HttpResponseBadRequest

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def _has_nul(query) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in query.lists())


class RejectNulBytesMiddleware:
    """A 400 for a request whose path, query string or form fields contain a NUL byte.

    Postgres cannot store or compare a string with a NUL byte in it, so such a
    value reaching a query is a 500; no legitimate form or link sends one.
    Only url-encoded bodies are read here: a multipart body is left unread so
    a view can still put its own upload handlers in place (search by image
    caps the upload before it is spooled).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path_info or _has_nul(request.GET) or (
                request.content_type == FORM_CONTENT_TYPE and _has_nul(request.POST)):
            return HttpResponseBadRequest("A request value contains a NUL byte.", content_type="text/plain")
        return self.get_response(request)
