"""Faces in one image: dlib's detector, 5-point landmarks, the 128-d face descriptor, and quality.

Django-free. The weights are the files of the ``face_recognition_models``
wheel, found without importing that package (its ``__init__`` needs
``pkg_resources``, which setuptools ≥ 81 no longer has); they are loaded
once per process (:func:`load`): about 90 MB of memory.

How a face is found (chosen by measurement, ``bench/faces_bench.py`` and
BENCHMARKS.md): dlib's HOG detector on the image scaled so that its long edge
is :data:`WORK_EDGE` px, upsampled once (:data:`UPSAMPLE`). In a 1600 px
viewer thumbnail it finds faces from about 40 px wide (2.5 % of the long
edge); at 800 px / upsampled once — or 1600 px as it is, which costs the same —
only from about 64 px, at about half the cost. The CNN detector (MMOD) finds
turned and profile faces HOG misses, but costs about 5 s a photo on one core
even at 800 px without upsampling. Landmarks and descriptors are computed on
the full image given (the viewer thumbnail), so small faces keep their detail.

Boxes and landmarks are fractions (0–1) of the image's width and height, the
way :class:`people.models.Face` stores them.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from gallery.stages import StageUnavailable

HOG, CNN = "hog", "cnn"
DETECTOR = HOG
WORK_EDGE = 1200  # long edge (px) the detector looks at
UPSAMPLE = 1  # dlib's pyramid upsampling on top of that (each step doubles the cost)
# dlib's HOG score below which a hit is dropped (dlib's own default is 0). Measured on the
# generated photos and the corpus: false hits (a badge on the astronaut's suit, textures)
# score ≤ 0.2, nine in ten true faces score above 0.3.
MIN_SCORE = 0.3
MAX_ENLARGE = 2.0  # a small image is enlarged towards WORK_EDGE, at most this much
SHARPNESS_EDGE = 96  # faces are scaled to this size before their sharpness is measured
MODEL_FILES = {
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn": "mmod_human_face_detector.dat",
}


class FaceModelsMissing(StageUnavailable):
    """The dlib weights are not installed (``pip install face_recognition_models``)."""


def model_path(kind: str) -> Path:
    """Where the weights for ``kind`` (a key of :data:`MODEL_FILES`) are installed."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelsMissing("the face models are not installed: pip install face_recognition_models")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL_FILES[kind]
    if not path.is_file():
        raise FaceModelsMissing(f"the face model file {path} is missing: reinstall face_recognition_models")
    return path


@dataclass(frozen=True)
class Models:
    hog: object
    landmarks: object
    descriptor: object
    cnn: object | None  # loaded only when asked for
    lock: threading.Lock  # dlib's objects are not meant to be shared between threads at once


@lru_cache(maxsize=2)
def load(*, cnn: bool = False) -> Models:
    """dlib's detector, landmark predictor and descriptor network, once per process."""
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - dlib-bin is a requirement
        raise FaceModelsMissing(f"dlib is not installed: pip install dlib-bin ({exc})") from exc
    return Models(
        hog=dlib.get_frontal_face_detector(),
        landmarks=dlib.shape_predictor(str(model_path("landmarks"))),
        descriptor=dlib.face_recognition_model_v1(str(model_path("descriptor"))),
        cnn=dlib.cnn_face_detection_model_v1(str(model_path("cnn"))) if cnn else None,
        lock=threading.Lock(),
    )


@dataclass(frozen=True)
class FoundFace:
    """One face: box and landmarks as fractions of the image, its descriptor and quality."""

    box: tuple[float, float, float, float]  # x, y, w, h
    landmarks: list[list[float]]  # dlib's 5 points: eye corners and the bottom of the nose
    embedding: np.ndarray  # 128 float32, unit-free; same person ≈ Euclidean distance < 0.6
    size: int  # shorter edge of the box in pixels of the image it was found on
    sharpness: float  # variance of the Laplacian of the face scaled to SHARPNESS_EDGE px
    score: float  # the detector's confidence
    detector: str


def sharpness(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a grayscale array (higher = sharper)."""
    g = gray.astype(np.float32)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def _face_sharpness(image: Image.Image, left: int, top: int, right: int, bottom: int) -> float:
    crop = image.crop((left, top, right, bottom)).convert("L").resize((SHARPNESS_EDGE, SHARPNESS_EDGE),
                                                                        Image.Resampling.BILINEAR)
    return sharpness(np.asarray(crop))


def _rect_box(rect, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """A dlib rectangle found on the scaled image, in pixels of the full one, inside it."""
    left = max(0, int(round(rect.left() / scale)))
    top = max(0, int(round(rect.top() / scale)))
    right = min(width, int(round((rect.right() + 1) / scale)))
    bottom = min(height, int(round((rect.bottom() + 1) / scale)))
    return left, top, right, bottom


def detect(image: Image.Image, *, detector: str = DETECTOR, work_edge: int = WORK_EDGE,
           upsample: int = UPSAMPLE, min_score: float = MIN_SCORE) -> list[FoundFace]:
    """Every face in ``image`` (upright RGB), largest first."""
    import dlib

    models = load(cnn=detector == CNN)
    image = image.convert("RGB")
    width, height = image.size
    scale = min(MAX_ENLARGE, work_edge / max(width, height))
    small = image if scale == 1.0 else image.resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR)
    pixels = np.asarray(image)
    small_pixels = pixels if small is image else np.asarray(small)
    found: list[tuple[object, float]] = []
    with models.lock:
        if detector == CNN:
            for hit in models.cnn(small_pixels, upsample):
                found.append((hit.rect, float(hit.confidence)))
        elif detector == HOG:
            rects, scores, _ = models.hog.run(small_pixels, upsample, min_score)
            found = list(zip(rects, scores))
        else:
            raise ValueError(f"unknown face detector {detector!r} (hog or cnn)")
        faces = []
        for rect, score in found:
            left, top, right, bottom = _rect_box(rect, scale, width, height)
            if right - left < 2 or bottom - top < 2:
                continue
            shape = models.landmarks(pixels, dlib.rectangle(left, top, right - 1, bottom - 1))
            descriptor = np.asarray(models.descriptor.compute_face_descriptor(pixels, shape), dtype=np.float32)
            points = [[shape.part(i).x / width, shape.part(i).y / height] for i in range(shape.num_parts)]
            faces.append(FoundFace(
                box=(left / width, top / height, (right - left) / width, (bottom - top) / height),
                landmarks=[[round(x, 5), round(y, 5)] for x, y in points],
                embedding=descriptor,
                size=min(right - left, bottom - top),
                sharpness=round(_face_sharpness(image, left, top, right, bottom), 2),
                score=round(score, 3),
                detector=detector,
            ))
    faces.sort(key=lambda f: f.box[2] * f.box[3], reverse=True)
    return faces
