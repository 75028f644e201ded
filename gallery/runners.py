"""The gallery's stage: thumbnails, the database side (rendering itself is ``gallery.thumbnails``)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from gallery import content, stages, thumbnails
from gallery.imaging import BrokenImage, SkipFile
from gallery.models import Photo, SourceFile
from gallery.originals import original_path

THUMBNAIL = "thumbnail"

# Called as hook(merged photo id, id of the photo it joined) when the thumbnail stage finds a photo
# holding an older one's content, before the merged photo is deleted: apps move over what the owner
# decided on it (the tagging app: tag decisions and the owner's caption).
ON_MERGE: list[Callable[[int, int], None]] = []


def render_thumbnails(batch) -> None:
    """Render each photo's thumbnails from its first present file.

    A photo whose pixels cannot be decoded is marked broken (hidden from the
    grid, listed on the jobs page) and fails this stage with the decoder's
    reason; the stages that need thumbnails are blocked for it. A photo the
    scan identified by its quick hash is hashed whole first (:func:`confirm_content`).
    """
    for photo in batch.photos:
        with batch.guard(photo):
            path = original_path(photo)
            if photo.hash_pending and not confirm_content(photo, path):
                batch.gone(photo)
                continue
            try:
                thumbnails.render_thumbnails(
                    path, photo.content_hash, thumb_dir=settings.THUMBNAIL_DIR,
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


def confirm_content(photo: Photo, path: bytes) -> bool:
    """Replace the quick hash a scan gave ``photo`` with the hash of its whole content, read at ``path``.

    That file must still have the quick hash the scan read (else ``ContentChanged``:
    the next scan reads the edit). When another photo turns out to hold the same
    content (imported before quick hashes, or by a scan running at the same time),
    ``photo``'s files join that one, as the scan would have done, what the owner
    decided on ``photo`` meanwhile moves over (``ON_MERGE``), and ``photo`` — just
    imported, its thumbnails not yet made — is deleted: returns False.
    """
    whole = content.whole_hash_matching(path, photo.quick_hash)
    with transaction.atomic():
        same = Photo.objects.select_for_update().filter(content_hash=whole).exclude(pk=photo.pk).first()
        if same is not None:
            SourceFile.objects.filter(photo=photo).update(photo=same)
            for hook in ON_MERGE:
                hook(photo.pk, same.pk)
            photo.delete()
            return False
        Photo.objects.filter(pk=photo.pk).update(content_hash=whole, hash_pending=False)
    photo.content_hash, photo.hash_pending = whole, False
    return True


def register() -> None:
    stages.register(stages.StageSpec(
        name=THUMBNAIL, order=10, runner=render_thumbnails, label="Thumbnails",
        batch_size=lambda: settings.THUMBNAIL_BATCH,
    ))
