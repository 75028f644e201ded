"""Face crops for the People pages, cut from the photo's viewer thumbnail and cached on disk.

``THUMBNAIL_DIR / faces / ab / <content hash>-f<face id>-<box digest>.jpg``:
the name changes when the photo's content or the face's box changes, so a
cached crop is never stale, and duplicates of a photo share nothing they
should not. The crop is the face's box with a margin of ``MARGIN`` of its size
on every side (clamped to the image), scaled so its long edge is at most
``EDGE`` pixels.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from PIL import Image

from gallery.thumbnails import _write_jpeg, thumbnail_path  # the one atomic, durable JPEG writer
from people.geometry import clamp

MARGIN = 0.3  # of the box's width / height, on each side
EDGE = 256  # px, the crop's long edge at most
QUALITY = 85


def crop_path(thumb_dir: Path, content_hash: str, face_id: int, box) -> Path:
    digest = hashlib.blake2s(repr(tuple(round(v, 5) for v in box)).encode(), digest_size=4).hexdigest()
    return thumbnail_path(Path(thumb_dir) / "faces", content_hash, f"f{int(face_id)}-{digest}")


def margin_box(box, margin: float = MARGIN):
    """``box`` grown by ``margin`` of its size on each side, clamped to the image (fractions)."""
    x, y, w, h = box
    return clamp((x - margin * w, y - margin * h, w * (1 + 2 * margin), h * (1 + 2 * margin)))


def face_crop(thumb_dir: Path, content_hash: str, face_id: int, box, *, viewer: str = "viewer") -> Path | None:
    """The crop's path, rendered from the viewer thumbnail if not cached; None when there is no thumbnail
    or the box has no area."""
    if not all(math.isfinite(v) for v in box):
        return None
    path = crop_path(thumb_dir, content_hash, face_id, box)
    if path.is_file():
        return path
    source = thumbnail_path(Path(thumb_dir), content_hash, viewer)
    if not source.is_file():
        return None
    left, top, width, height = margin_box(box)
    with Image.open(source) as image:
        image = image.convert("RGB")
        W, H = image.size
        rect = (round(left * W), round(top * H), round((left + width) * W), round((top + height) * H))
        if rect[2] - rect[0] < 1 or rect[3] - rect[1] < 1:
            return None
        crop = image.crop(rect)
        crop.thumbnail((EDGE, EDGE), Image.Resampling.LANCZOS)
        _write_jpeg(crop, path, QUALITY)
    return path
