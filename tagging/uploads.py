"""Images uploaded to search with: checked by content, decoded safely, never kept."""

from __future__ import annotations

import os
import tempfile

from django.conf import settings

from gallery import imaging

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class UploadError(ValueError):
    pass


def open_uploaded_image(upload, *, target: int = 448):
    """An RGB, upright image from an uploaded file, or UploadError with the reason."""
    if upload.size > MAX_UPLOAD_BYTES:
        raise UploadError(f"That file is {upload.size / 1e6:.0f} MB; images up to {MAX_UPLOAD_BYTES // 2**20} MB can be searched with.")
    fd, path = tempfile.mkstemp(prefix="shoebox-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in upload.chunks():
                f.write(chunk)
        try:
            info = imaging.identify(path, max_pixels=settings.MAX_IMAGE_PIXELS)
            info.close()
            return imaging.open_upright(path, target=target, max_pixels=settings.MAX_IMAGE_PIXELS)
        except (imaging.SkipFile, imaging.BrokenImage) as exc:
            raise UploadError(f"Cannot search with that file: {exc.reason}.") from None
    finally:
        os.unlink(path)
