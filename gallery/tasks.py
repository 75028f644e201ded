"""django-q2 task entry points. Thin: each calls one function and returns its summary."""

from gallery import pipeline, thumbnails
from gallery.models import Library


def scan_library(library_id: int) -> dict:
    library = Library.objects.get(pk=library_id)
    return pipeline.import_library(library).totals


def render_thumbnails(photo_ids: list[int]) -> dict:
    return thumbnails.render_batch(photo_ids)
