"""Small real files made on the spot for tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PIL import Image

from gallery.models import Library, Photo, SourceFile


def make_jpeg(path: Path, *, size=(64, 48), color=(200, 80, 40), taken: str | None = None,
              offset: str | None = None, orientation: int | None = None) -> Path:
    """Write a JPEG with the given EXIF capture time (``"2023:07:04 12:34:56"``) and offset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    if taken:
        ifd = exif.get_ifd(0x8769)
        ifd[0x9003] = taken  # DateTimeOriginal
        if offset:
            ifd[0x9011] = offset  # OffsetTimeOriginal
    Image.new("RGB", size, color).save(path, "JPEG", exif=exif.tobytes())
    return path


def make_photo(library: Library, relpath: str, *, taken: datetime, **fields) -> Photo:
    """A photo row with one present file, for tests about queries rather than import."""
    import hashlib
    import os

    digest = hashlib.sha256(f"{library.pk}/{relpath}".encode()).hexdigest()
    photo = Photo.objects.create(
        content_hash=digest, file_size=1, format="JPEG", mime_type="image/jpeg", width=4, height=3,
        taken_at=taken, taken_at_source="test", **fields,
    )
    SourceFile.objects.create(
        library=library, path_bytes=relpath.encode(), relpath=relpath,
        folder=os.path.dirname(relpath), size=1, mtime_ns=0, photo=photo, outcome="photo",
    )
    return photo
