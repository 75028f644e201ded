"""Boxes as fractions of the displayed image: ``(x, y, w, h)``, top-left origin, all in 0–1."""

from __future__ import annotations

Box = tuple[float, float, float, float]


def clamp(box: Box) -> Box:
    """The part of ``box`` inside the image."""
    x, y, w, h = box
    left, top = max(0.0, min(1.0, x)), max(0.0, min(1.0, y))
    right, bottom = max(0.0, min(1.0, x + w)), max(0.0, min(1.0, y + h))
    return (left, top, max(0.0, right - left), max(0.0, bottom - top))


def intersection(a: Box, b: Box) -> float:
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0.0, width) * max(0.0, height)


def iou(a: Box, b: Box) -> float:
    """Intersection over union; 0 for boxes without area."""
    shared = intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - shared
    return shared / union if union > 0 else 0.0


def overlap(a: Box, b: Box) -> float:
    """How much of the smaller box the other covers (1 = one box lies inside the other).

    Face regions drawn by hand are often much larger or smaller than a
    detector's box for the same face: IoU punishes that, this does not.
    """
    smaller = min(a[2] * a[3], b[2] * b[3])
    return intersection(a, b) / smaller if smaller > 0 else 0.0


def same_face(a: Box, b: Box, *, threshold: float = 0.5) -> bool:
    """Whether two boxes mark the same face: most of the smaller box is inside the other, and
    their sizes are within 4× of each other (a face inside a group's region is not the group)."""
    area_a, area_b = a[2] * a[3], b[2] * b[3]
    if area_a <= 0 or area_b <= 0 or max(area_a, area_b) > 16 * min(area_a, area_b):
        return False
    return overlap(a, b) >= threshold
