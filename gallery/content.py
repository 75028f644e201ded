"""A photo's identity by content: the whole-file hash, and the quick hash the scan uses in its place.

A photo is identified by the BLAKE3 hash of its whole content (``Photo.content_hash``).
Reading every byte of every file is most of what an import costs, so the scan
hashes whole only the files that need it:

* files up to ``WHOLE_UP_TO`` bytes (hashing them whole costs a few hundredths
  of a millisecond);
* files whose **quick hash** — BLAKE3 of the size, the first and the last
  16 KiB (``SPAN``) — another photo already has, or another file of the same scan
  batch (a duplicate, a moved file, an edit that kept the size and both ends:
  the whole hash decides), and files of the same size as a photo imported
  before quick hashes existed.

Same content always gives the same quick hash, so a file whose quick hash no
photo has holds content no photo has: it becomes a new photo whose
``content_hash`` is, for now, its quick hash (``hash_pending``). The thumbnail
stage, which reads the whole file anyway, hashes it whole before it names any
thumbnail (:func:`confirm`), and merges the photo into an older one in the
rare case that turns out to hold the same content.
"""

from __future__ import annotations

import os
import stat

SPAN = 16 << 10  # bytes of the head and of the tail in the quick hash
WHOLE_UP_TO = 256 << 10  # files this small are hashed whole during the scan
CHUNK = 8 << 20
_QUICK_CONTEXT = "Shoebox 2026-12-06 quick hash of size, head and tail"


class ContentChanged(OSError):
    """A photo's file no longer holds what the scan read (edited or replaced since)."""

    reason = "the file changed after the scan read it: the next scan reads it again"

    def __init__(self):
        super().__init__(self.reason)


def file_hash(path: bytes | str) -> str:
    """BLAKE3 of the file's content (hex, 64 characters): the photo's identity.

    BLAKE3 rather than SHA-256: 0.7 ms instead of 2.4 ms for a 4 MB JPEG on
    these machines, equally collision-resistant, and it releases the GIL.
    """
    return hashes(path)[1]


def hashes(path: bytes | str) -> tuple[str, str]:
    """``(quick hash, whole hash)`` of the file at ``path``, from one read streamed in 8 MiB chunks."""
    import blake3

    whole = blake3.blake3(max_threads=1)
    head, last, size = b"", b"", 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            whole.update(chunk)
            if len(head) < SPAN:
                head += chunk[: SPAN - len(head)]
            last = (last + chunk[-2 * SPAN :])[-2 * SPAN :]  # the tail, however the chunks fall
            size += len(chunk)
    return _quick(size, head, last[-SPAN:] if size > 2 * SPAN else last[SPAN:]), whole.hexdigest()


def _quick(size: int, head: bytes, tail: bytes) -> str:
    import blake3

    hasher = blake3.blake3(derive_key_context=_QUICK_CONTEXT)
    hasher.update(size.to_bytes(8, "little"))
    hasher.update(head)
    hasher.update(tail)
    return hasher.hexdigest()


def quick_hash(path: bytes | str) -> str:
    """The quick hash of the file at ``path``, reading only its head and tail (hex, 64 characters;
    never equal to a whole-file hash)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(SPAN)
        if size > 2 * SPAN:
            f.seek(-SPAN, os.SEEK_END)
        return _quick(size, head, f.read(SPAN))


def scan_hashes(path: bytes | str, size: int) -> tuple[str, str]:
    """``(quick hash, whole hash)`` of a file for the scan; the whole hash is "" for files over ``WHOLE_UP_TO``."""
    return (quick_hash(path), "") if size > WHOLE_UP_TO else hashes(path)


def whole_hash_matching(path: bytes | str, quick: str) -> str:
    """The whole hash of the file at ``path``, provided it still has the quick hash ``quick`` (one read).

    Raises :class:`ContentChanged` when it does not, ``OSError`` when it cannot be read.
    """
    found, whole = hashes(path)
    if found != quick:
        raise ContentChanged()
    return whole


PREFETCH_HEAD = 128 << 10  # what reading a header takes: EXIF, XMP, ICC and the image header of a camera JPEG


def prefetch(paths) -> None:
    """Ask the kernel to start reading what the scan will read of these files (head and tail), all at once.

    One thread then reads them (threads reading small parts of files contend for the
    GIL more than they gain), while the disk or network share serves many reads
    together: a cold scan keeps the throughput of several reading threads.
    """
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            continue  # the scan reports it when it reads the file
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            size = st.st_size
            os.posix_fadvise(fd, 0, PREFETCH_HEAD, os.POSIX_FADV_WILLNEED)
            if size > PREFETCH_HEAD:
                os.posix_fadvise(fd, size - SPAN, SPAN, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)

