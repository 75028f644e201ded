"""The gallery's stage: thumbnails, the database side (rendering itself is ``gallery.thumbnails``)."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from gallery import stages, thumbnails
from gallery.imaging import BrokenImage, SkipFile
from gallery.models import Photo
from gallery.originals import original_path

THUMBNAIL = "thumbnail"


def render_thumbnails(batch) -> None:
    """Render each photo's thumbnails from its first present file.

    A photo whose pixels cannot be decoded is marked broken (hidden from the
    grid, listed on the jobs page) and fails this stage with the decoder's
    reason; the stages that need thumbnails are blocked for it.
    """
    for photo in batch.photos:
        with batch.guard(photo):
            try:
                thumbnails.render_thumbnails(
                    original_path(photo), photo.content_hash, thumb_dir=settings.THUMBNAIL_DIR,
                    sizes=settings.THUMBNAIL_SIZES, quality=settings.THUMBNAIL_QUALITY,
                    max_pixels=settings.MAX_IMAGE_PIXELS,
                )
            except (BrokenImage, SkipFile) as exc:
                Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.BROKEN, broken_reason=exc.reason)
                raise BrokenImage(exc.reason) from exc
            with batch.saving(photo):
                Photo.objects.filter(pk=photo.pk).update(
                    thumbnails_at=timezone.now(), status=Photo.Status.OK, broken_reason=""
                )


def register() -> None:
    stages.register(stages.StageSpec(
        name=THUMBNAIL, order=10, runner=render_thumbnails, label="Thumbnails",
        batch_size=lambda: settings.THUMBNAIL_BATCH,
    ))
