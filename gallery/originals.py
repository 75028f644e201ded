"""Finding a photo's original file on disk, only ever inside a library root."""

from __future__ import annotations

import os

from gallery.models import Photo, SourceFile


class OriginalMissing(FileNotFoundError):
    pass


def inside_root(root: bytes, path: bytes) -> bool:
    """True if ``path`` lies inside ``root`` once ``..`` and duplicate slashes are resolved."""
    root = os.path.normpath(root)
    path = os.path.normpath(path)
    return path.startswith(root.rstrip(b"/") + b"/")


def source_path(sf: SourceFile) -> bytes:
    """Absolute path of a known file, refusing anything outside its library root."""
    path = os.path.join(sf.library.root_bytes, bytes(sf.path_bytes))
    if not inside_root(sf.library.root_bytes, path):
        raise OriginalMissing(f"{sf.relpath} is outside its library root")
    return path


def original_path(photo: Photo) -> bytes:
    """The first present file of ``photo`` that still exists on disk."""
    for sf in photo.present_files().order_by("id"):
        path = source_path(sf)
        if os.path.isfile(path):
            return path
    raise OriginalMissing(f"no file of photo {photo.pk} is present on disk")
