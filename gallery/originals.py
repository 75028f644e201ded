"""Finding and opening a photo's original file on disk, only ever inside a library root.

Symlinks inside a library are followed only when they resolve inside the
library root: a path counts as inside when its real path (every link, ``..``
and duplicate slash resolved) lies below the real path of the root. A link
that leads anywhere else is treated as if the file were not there. The
scanner applies the same rule when it walks a library (``scanner.walk``), so
such a link is reported there rather than imported.

Serving a file goes further than checking its path: ``open_original`` opens
the resolved path one component at a time from the root without following
any link (a link swapped in after the check makes the open fail), without
blocking (a FIFO in place of a photo would otherwise hang the thread), and
then checks on the open descriptor that it is a regular file.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from gallery.models import Photo, SourceFile


class OriginalMissing(FileNotFoundError):
    pass


def inside_root(root: bytes, path: bytes) -> bool:
    """True if the real path of ``path`` lies below the real path of ``root`` (symlinks resolved)."""
    return _below(os.path.realpath(root), os.path.realpath(path))


def _below(real_root: bytes, real_path: bytes) -> bool:
    return real_path.startswith(real_root.rstrip(b"/") + b"/")


def _resolve(sf: SourceFile) -> tuple[bytes, bytes]:
    """The real paths of ``sf``'s library root and of ``sf``; OriginalMissing if the file is not below the root."""
    try:
        root = os.path.realpath(sf.library.root_bytes)
        real = os.path.realpath(os.path.join(sf.library.root_bytes, bytes(sf.path_bytes)))
    except ValueError:  # an embedded NUL byte
        raise OriginalMissing(f"{sf.relpath} is not a valid path") from None
    if not _below(root, real):
        raise OriginalMissing(f"{sf.relpath} is outside its library root")
    return root, real


def source_path(sf: SourceFile) -> bytes:
    """Absolute path of a known file, refusing anything that is or leads outside its library root."""
    _resolve(sf)
    return os.path.join(sf.library.root_bytes, bytes(sf.path_bytes))


def open_original(sf: SourceFile) -> BinaryIO:
    """The file of ``sf`` opened for reading; OriginalMissing if it is outside its root, gone, or not a regular file.

    Never follows a link out of the root and never blocks (see the module docstring).
    """
    root, real = _resolve(sf)
    try:
        fd = _open_beneath(root, os.path.relpath(real, root))
    except OSError as exc:
        raise OriginalMissing(f"{sf.relpath} cannot be opened: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OriginalMissing(f"{sf.relpath} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_beneath(root: bytes, rel: bytes) -> int:
    """A read-only, non-blocking descriptor for ``rel`` below the folder ``root``, following no symlink.

    Each folder is opened relative to the one before with ``O_NOFOLLOW``, so a
    component replaced by a link between resolving and opening fails the open
    (ELOOP or ENOTDIR) instead of leading elsewhere.
    """
    *folders, name = rel.split(b"/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for folder in folders:
            inner = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)


def original_path(photo: Photo) -> bytes:
    """The first present file of ``photo`` that still exists on disk."""
    for sf in photo.present_files().order_by("id"):
        path = source_path(sf)
        if os.path.isfile(path):
            return path
    raise OriginalMissing(f"no file of photo {photo.pk} is present on disk")
