"""Images uploaded to search with: checked by content, decoded safely, never kept."""

from __future__ import annotations

import os
import tempfile

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from gallery import imaging

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class UploadError(ValueError):
    pass


class UploadTooLarge(UploadError):
    pass


def too_large_message(size: int) -> str:
    return f"That file is {size / 1e6:.0f} MB; images up to {MAX_UPLOAD_BYTES // 2**20} MB can be searched with."


class LimitedUpload(FileUploadHandler):
    """Stops reading a request body once it passes MAX_UPLOAD_BYTES (a body without a length, too).

    Put first in ``request.upload_handlers`` before the body is read: the
    rest of the body is then never spooled to memory or disk.
    """

    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0
        self.too_large = False

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > MAX_UPLOAD_BYTES:
            self.too_large = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None


def open_uploaded_image(upload, *, target: int = 448):
    """An RGB, upright image from an uploaded file, or UploadError with the reason."""
    if upload.size > MAX_UPLOAD_BYTES:
        raise UploadTooLarge(too_large_message(upload.size))
    fd, path = tempfile.mkstemp(prefix="shoebox-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in upload.chunks():
                f.write(chunk)
        try:
            # Far fewer pixels than an import admits: this decodes in a web worker.
            info = imaging.identify(path, max_pixels=settings.UPLOAD_MAX_PIXELS)
            info.close()
            return imaging.open_upright(path, target=target, max_pixels=settings.UPLOAD_MAX_PIXELS)
        except (imaging.SkipFile, imaging.BrokenImage) as exc:
            raise UploadError(f"Cannot search with that file: {exc.reason}.") from None
    finally:
        os.unlink(path)
