"""Which JPEG draft + resampling settings to use for thumbnails (speed vs quality).

Usage: .venv/bin/python bench/thumbs_draft.py [JPEG]   (default: a generated 4000×3000 noisy JPEG)

For each target size it times (best-of-7 process CPU time) decoding and
resizing with several strategies and reports PSNR against the reference: full
decode + LANCZOS. Above ~40 dB the difference is invisible in a thumbnail.
The choice made in gallery.imaging (draft to >= target, then LANCZOS) comes
from this table; not run by `make test`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_test_jpeg() -> Path:
    """A 12 MP JPEG with noise and fine stripes (hard on resamplers)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:3000, 0:4000]
    base = np.stack([xx / 4000 * 255, yy / 3000 * 255, (xx + yy) / 7000 * 255], axis=-1)
    pixels = base + rng.normal(0, 10, base.shape) + (12 * np.sin(xx * 0.9 + yy * 0.3))[..., None]
    path = Path(tempfile.gettempdir()) / "shoebox-bench-12mp.jpg"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def fit(size: tuple[int, int], target: int) -> tuple[int, int]:
    scale = target / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def decode(path: Path, target: int, draft_factor: float | None, gap: float | None, resample) -> Image.Image:
    with Image.open(path) as image:
        final = fit(image.size, target)
        if draft_factor:
            image.draft("RGB", (int(final[0] * draft_factor), int(final[1] * draft_factor)))
        image.load()
        return image.resize(final, resample, reducing_gap=gap)


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = ((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2).mean()
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def best_cpu_ms(call, runs: int = 7):
    best, result = float("inf"), None
    for _ in range(runs):
        start = time.process_time()
        result = call()
        best = min(best, time.process_time() - start)
    return best * 1000, result


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else make_test_jpeg()
    strategies = {
        "full decode + LANCZOS (reference)": (None, None, Image.Resampling.LANCZOS),
        "draft >= 1x target + LANCZOS": (1, None, Image.Resampling.LANCZOS),
        "draft >= 1x target + BICUBIC": (1, None, Image.Resampling.BICUBIC),
        "draft >= 1x target + BILINEAR": (1, None, Image.Resampling.BILINEAR),
        "draft >= 2x target + LANCZOS gap 2": (2, 2.0, Image.Resampling.LANCZOS),
    }
    print(f"{path}")
    for target in (400, 1600):
        _, reference = best_cpu_ms(lambda: decode(path, target, None, None, Image.Resampling.LANCZOS), 1)
        for name, (factor, gap, resample) in strategies.items():
            ms, image = best_cpu_ms(lambda: decode(path, target, factor, gap, resample))
            print(f"{target:5d} px  {name:36s} {ms:7.1f} ms  PSNR {psnr(image, reference):6.2f} dB")


if __name__ == "__main__":
    main()
