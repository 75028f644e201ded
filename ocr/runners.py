"""The OCR stage: what "read the text in a batch of photos" means (reading itself is ``ocr.reader``).

Each photo is read from its 1600 px viewer thumbnail (upright, sRGB, already on disk: no
original is decoded again), or from its original when that thumbnail is missing. Every photo
read gets one :class:`PhotoText` row — with no lines when it has no text, so it is not read
again. Afterwards the photos' search documents are rebuilt through ``DOCUMENTS_CHANGED``: the
tagging app, which owns them, adds its ``documents.refresh`` there (``ocr`` may not import it).
"""

from __future__ import annotations

from django.conf import settings

from gallery import stages
from gallery.imaging import open_upright
from gallery.models import PhotoStage
from gallery.originals import original_path
from gallery.runners import THUMBNAIL
from gallery.stages import StageSpec
from gallery.thumbnails import thumbnail_path
from ocr import reader
from ocr.models import PhotoText

OCR = "ocr"
VIEWER = "viewer"
MAX_TEXT = 20_000  # characters of text kept per photo (a page of small print is about 5,000)
# Callables taking a list of photo ids whose text changed (tagging.apps adds documents.refresh).
DOCUMENTS_CHANGED: list = []


def configured_model() -> str:
    return reader.model_name()


def load_reader() -> reader.Reader:
    """The process's reader (made once per worker process, then kept)."""
    return reader.load(threads=settings.OCR_THREADS, det_size=settings.OCR_DET_SIZE,
                       min_score=settings.OCR_MIN_SCORE, quick_size=settings.OCR_QUICK_SIZE)


def image_source(photo):
    """The viewer thumbnail when it is on disk, else the original (decoded to the viewer size)."""
    thumb = thumbnail_path(settings.THUMBNAIL_DIR, photo.content_hash, VIEWER)
    return str(thumb) if thumb.is_file() else original_path(photo)


def clean_text(value: str) -> str:
    """Text Postgres can store: no NUL, no lone surrogates."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def read_text(batch) -> None:
    """Read each photo's text and save its lines (boxes as fractions, scores) in one PhotoText row."""
    ocr_reader = load_reader()
    model = batch.model or configured_model()
    for photo in batch.photos:
        with batch.guard(photo):
            image = open_upright(image_source(photo), target=settings.THUMBNAIL_SIZES[VIEWER],
                                 max_pixels=settings.MAX_IMAGE_PIXELS)
            try:
                reading = ocr_reader.read(image)
            finally:
                image.close()
            lines = [dict(line.as_dict(), text=clean_text(line.text)) for line in reading.lines]
            with batch.saving(photo, seconds=reading.seconds):
                PhotoText.objects.update_or_create(photo=photo, defaults={
                    "model": model[:80], "lines": lines, "seconds": reading.seconds,
                    "text": "\n".join(line["text"] for line in lines)[:MAX_TEXT],
                })
    read = batch.ids(PhotoStage.State.DONE)
    if read:
        for hook in DOCUMENTS_CHANGED:
            hook(read)


def _read(model: str):
    return PhotoText.objects.filter(model=model).values("photo_id")


def register() -> None:
    stages.register(StageSpec(
        name=OCR, order=24, needs=(THUMBNAIL,), runner=read_text, label="Text in photos",
        batch_size=lambda: settings.OCR_BATCH, model=configured_model, rerunnable=True,
        outputs=_read, enabled=lambda: settings.OCR,
    ))
