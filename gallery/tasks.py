"""django-q2 task entry points. Thin: each calls one function and returns its summary."""

from gallery import pipeline
from gallery.models import Library, PhotoStage


def scan_library(library_id: int) -> dict:
    library = Library.objects.get(pk=library_id)
    return pipeline.import_library(library).totals


def render_thumbnails(photo_ids: list[int], model: str = "") -> dict:
    return pipeline.run_task(PhotoStage.Stage.THUMBNAIL, photo_ids, model)
