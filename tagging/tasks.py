"""django-q2 task entry points for the AI stages. Thin: each runs one batch."""

from gallery import pipeline
from gallery.models import PhotoStage


def embed(photo_ids: list[int], model: str = "") -> dict:
    return pipeline.run_task(PhotoStage.Stage.EMBEDDING, photo_ids, model)


def caption(photo_ids: list[int], model: str = "") -> dict:
    return pipeline.run_task(PhotoStage.Stage.CAPTION, photo_ids, model)


def near_duplicates() -> int:
    from tagging import near_duplicates as nd

    return nd.refresh()
