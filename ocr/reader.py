"""Reading text in an image with RapidOCR (PP-OCRv4 ONNX models inside the pip wheel). Django-free.

The pipeline is RapidOCR's own parts, driven here so that the sizes the detector reads at can be
chosen by measurement (bench/ocr_bench.py):

0. *Quick pass* (``quick_size``, optional): the detector on a small copy (640 px). Most photos
   have no text; where it finds no region the photo is done, for a fraction of a full pass.
1. *Detect* text regions on a copy of the image scaled to ``det_size`` px on its long edge. The
   detector (a DB net) costs almost all of the time and grows with the pixels it sees; a photo
   with no text stops here — no crop, no classifier, no recogniser.
2. *Crop* each region from the full-size image (small letters keep their pixels), turn it upright
   (the 0°/180° classifier), *recognise* it, and keep lines whose score is at least ``min_score``.

Lines come back in reading order (rows top to bottom, left to right within a row) with their
boxes as fractions of the image (4 corners, clockwise from top-left), so they fit the displayed
image at any size. One :class:`Reader` per process (``load``): the three ONNX sessions are made
once and kept.
"""

from __future__ import annotations

import functools
import importlib.metadata
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from gallery.stages import StageUnavailable

# The detector reads at most this much of a long edge by default (bench/ocr_bench.py).
DEFAULT_DET_SIZE = 960
DEFAULT_MIN_SCORE = 0.7


def model_name() -> str:
    """What reads the text, as stored with each photo's result (a new version reads again)."""
    try:
        version = importlib.metadata.version("rapidocr-onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return f"rapidocr-{version}:PP-OCRv4"


@dataclass(frozen=True)
class Line:
    text: str
    box: list[list[float]]  # [[x, y] × 4], fractions of the image, clockwise from top-left
    score: float

    def as_dict(self) -> dict:
        return {"text": self.text, "box": self.box, "score": self.score}


@dataclass
class Reading:
    lines: list[Line] = field(default_factory=list)
    regions: int = 0  # regions the detector found (before recognition and the score cut)
    quick_skip: bool = False  # the quick pass found nothing: the full detector did not run
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


class Reader:
    """RapidOCR's detector, classifier and recogniser, loaded once, single-threaded by default."""

    def __init__(self, *, threads: int = 1, det_size: int = DEFAULT_DET_SIZE, min_score: float = DEFAULT_MIN_SCORE,
                 quick_size: int = 0, use_cls: bool = True) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:  # the stage waits (a banner says why) instead of failing every photo
            raise StageUnavailable(
                f"Text in photos needs rapidocr-onnxruntime ({exc}): install requirements.txt, "
                "or switch the stage off with SHOEBOX_OCR=false"
            ) from exc
        if det_size < 64:
            raise ValueError(f"det_size must be at least 64 px, not {det_size}")
        self.det_size = det_size
        # A first detector pass this small (0: none): a photo where it finds nothing is done.
        self.quick_size = quick_size if 0 < quick_size < det_size else 0
        self.min_score = min_score
        self.use_cls = use_cls
        # limit_type "min" with a small limit: the detector takes the size given here (only
        # rounded to a multiple of 32) instead of scaling the short side up to 736 px itself.
        self._engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1,
                                det_limit_type="min", det_limit_side_len=32, text_score=min_score)
        self._lock = threading.Lock()  # the sessions are shared; one image at a time per process

    def read(self, image: Image.Image) -> Reading:
        """The text lines of ``image`` (any mode; RGB is used), in reading order."""
        started = time.perf_counter()
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])
        height, width = bgr.shape[:2]
        with self._lock:
            if self.quick_size and not len(self._detect(bgr, self.quick_size)):
                return Reading(quick_skip=True, seconds=time.perf_counter() - started)
            boxes = self._detect(bgr, self.det_size)
            if not len(boxes):
                return Reading(seconds=time.perf_counter() - started)
            crops = self._engine.get_crop_img_list(bgr, boxes)
            if self.use_cls:
                crops, _, _ = self._engine.text_cls(crops)
            recognised, _ = self._engine.text_rec(crops, False)
        kept = []
        for box, (text, score, *_) in zip(boxes, recognised):
            text = " ".join(str(text).split())
            if text and float(score) >= self.min_score:
                kept.append((box, text, float(score)))
        lines = [Line(text=text, box=_fractions(box, width, height), score=round(score, 4))
                 for box, text, score in (kept[i] for i in reading_order([box for box, _, _ in kept]))]
        return Reading(lines=lines, regions=len(boxes), seconds=time.perf_counter() - started)

    def _detect(self, bgr: np.ndarray, size: int) -> np.ndarray:
        """Text regions as float32 ``[n, 4, 2]`` pixel corners of the full image (empty: no text)."""
        import cv2

        height, width = bgr.shape[:2]
        scale = min(size / max(height, width), 2.0)  # a small image is enlarged at most twice
        small = bgr
        if abs(scale - 1.0) > 0.02:
            size = (max(32, round(width * scale)), max(32, round(height * scale)))
            small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        else:
            scale = 1.0
        boxes, _ = self._engine.text_det(small)
        if boxes is None or not len(boxes):
            return np.zeros((0, 4, 2), np.float32)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4, 2)
        sx, sy = width / small.shape[1], height / small.shape[0]
        boxes[:, :, 0] = np.clip(boxes[:, :, 0] * sx, 0, width - 1)
        boxes[:, :, 1] = np.clip(boxes[:, :, 1] * sy, 0, height - 1)
        return boxes


def _fractions(box: np.ndarray, width: int, height: int) -> list[list[float]]:
    return [[round(float(x) / width, 4), round(float(y) / height, 4)] for x, y in box]


def reading_order(boxes: list[np.ndarray]) -> list[int]:
    """The order to read these boxes (pixel corners, clockwise from top-left) in: indices.

    Rows top to bottom, left to right within a row, measured along the text: the corners are first
    turned by the boxes' median slant, so the lines of a tilted sign still read top line first. A
    box joins the current row when its centre lies within half a line height of the row's first box.
    """
    if not boxes:
        return []
    corners = np.asarray(boxes, np.float64).reshape(-1, 4, 2)
    top = corners[:, 1] - corners[:, 0]
    angle = float(np.median(np.arctan2(top[:, 1], top[:, 0])))
    cos, sin = np.cos(angle), np.sin(angle)
    along = corners[..., 0] * cos + corners[..., 1] * sin  # the text's direction
    across = -corners[..., 0] * sin + corners[..., 1] * cos  # down the page
    centre = across.mean(axis=1)
    height = across.max(axis=1) - across.min(axis=1)
    rows: list[list[int]] = []
    for i in sorted(range(len(corners)), key=lambda k: centre[k]):
        first = rows[-1][0] if rows else None
        if first is not None and abs(centre[i] - centre[first]) <= max(height[i], height[first]) / 2:
            rows[-1].append(i)
        else:
            rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda k: along[k].min())]


@functools.lru_cache(maxsize=2)
def load(*, threads: int = 1, det_size: int = DEFAULT_DET_SIZE, min_score: float = DEFAULT_MIN_SCORE,
         quick_size: int = 0) -> Reader:
    """The process's reader for these settings (made once: about 0.2 s and 15 MB of models)."""
    return Reader(threads=threads, det_size=det_size, min_score=min_score, quick_size=quick_size)
