"""Import throughput: Shoebox's metadata scan and thumbnails vs exiftool and vipsthumbnail.

Generates N twelve-megapixel JPEGs with camera EXIF (date, exposure, GPS),
then, in the same run and on the same files:

* metadata scan — Shoebox's whole scan (walk, quick hash of size + head + tail,
  content sniffing, EXIF/IPTC/XMP, GPS + offline place names, database writes) in
  files/s, against ``exiftool -json -fast`` on the same files, in interleaved
  rounds (median and every round printed); then what follows a scan
  (``scans.after_scan``: face regions, file keywords, search documents, a row in
  every stage for each new photo), which an import pays too, and the whole-file
  BLAKE3 hash the thumbnail stage now computes for these photos;
* thumbnails — Shoebox's 400 px grid thumbnail alone, and its real stage
  (400 + 1600 px from one decode), in CPU seconds per file, against
  ``vipsthumbnail --size 400`` run one process over all files.

Prints the ratios; BENCHMARKS.md records them. Run: ``make bench`` or
``.venv/bin/python bench/import_bench.py [--files 200]``. Uses a separate
database (``shoebox_bench``) on the embedded server and drops it after.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gallery.settings")
os.environ["SHOEBOX_DB_NAME"] = "shoebox_bench"

import benchdb  # noqa: E402  (bench/ is on sys.path when this file runs)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_photos(folder: Path, count: int) -> None:
    """``count`` 4000×3000 JPEGs: a few textured scenes, each file with its own EXIF (so its own hash)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(42)
    y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
    scenes = []
    for s in range(4):
        base = np.stack([
            128 + 90 * np.sin(x / (140 + 40 * s) + s) * np.cos(y / (170 + 30 * s)),
            128 + 80 * np.cos((x + y) / (220 + 50 * s)),
            128 + 70 * np.sin(y / (90 + 20 * s) - s),
        ], axis=-1)
        base += rng.normal(0, 12, base.shape)  # sensor-like noise: realistic file sizes
        scenes.append(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB"))
    for i in range(count):
        exif = Image.Exif()
        exif[0x010F] = "Canon"
        exif[0x0110] = "Canon EOS R6"
        exif[0x0112] = 1
        ifd = exif.get_ifd(0x8769)
        ifd[0x9003] = f"2023:07:{1 + i % 28:02d} {8 + i % 12:02d}:{i % 60:02d}:00"
        ifd[0x9011] = "+02:00"
        ifd[0x829A] = 1 / 250  # ExposureTime
        ifd[0x829D] = 5.6  # FNumber
        ifd[0x8827] = 400  # ISO
        ifd[0x920A] = 50.0  # FocalLength
        ifd[0xA420] = f"{i:032x}"  # ImageUniqueID: the times and places above repeat every 420 files
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = "N", (43.0, 28.0, float(i * 7 % 60))
        gps[3], gps[4] = "E", (11.0, 53.0, float(i * 11 % 60))
        scenes[i % len(scenes)].save(folder / f"IMG_{i:04d}.jpg", "JPEG", quality=90, exif=exif.tobytes())


def timed(fn):
    wall, cpu = time.perf_counter(), self_cpu()
    result = fn()
    return result, time.perf_counter() - wall, self_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved exiftool / scan rounds (median reported)")
    parser.add_argument("--keep", action="store_true", help="keep the generated photos")
    args = parser.parse_args()
    for tool in ("exiftool", "vipsthumbnail"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed for the baseline (make system-deps installs it)")

    work = Path(tempfile.mkdtemp(prefix="shoebox-bench-"))
    photos = work / "photos"
    photos.mkdir()
    t = time.perf_counter()
    make_photos(photos, args.files)
    files = sorted(photos.glob("*.jpg"))
    size_mb = sum(f.stat().st_size for f in files) / len(files) / 1e6
    print(f"generated {len(files)} JPEGs of 4000x3000 ({size_mb:.1f} MB each) in {time.perf_counter() - t:.0f}s")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")

    params = benchdb.create()
    try:
        from django.conf import settings

        from gallery import content, libraries, metadata, places, scanner, scans, thumbnails
        from gallery.models import Photo

        # One-off per process, not per-file work: the geocoder's tree and the time zones' polygon index.
        places.lookup([(0.0, 0.0)])
        metadata.zone_at(43.5, 11.9)
        # Warm the page cache for both sides alike.
        for f in files:
            f.read_bytes()

        # --- metadata: exiftool baseline, then Shoebox's whole scan, interleaved rounds ---
        from django.db import connection

        rounds = []
        for _ in range(args.rounds):
            c0, w0 = children_cpu(), time.perf_counter()
            subprocess.run(["exiftool", "-json", "-fast", *map(str, files)], check=True, stdout=subprocess.DEVNULL)
            exif_wall, exif_cpu = time.perf_counter() - w0, children_cpu() - c0
            with connection.cursor() as cur:  # the next round imports into an empty library again
                cur.execute("TRUNCATE gallery_library, gallery_photo, gallery_sourcefile CASCADE")
            library, _ = libraries.add_library(str(photos), "bench")
            report, scan_wall, scan_cpu = timed(lambda: scanner.Scanner(library).run())
            assert report.totals["imported"] == len(files), report.totals
            _, after_wall, after_cpu = timed(lambda: scans.after_scan(report, queue=False))
            rounds.append((exif_wall, exif_cpu, scan_wall, scan_cpu, after_wall, after_cpu))
        rescan, rescan_wall, _ = timed(lambda: scanner.Scanner(library).run())
        assert rescan.totals["unchanged"] == len(files)
        pending = Photo.objects.filter(hash_pending=True).count()
        # What the scan no longer does: the whole-file hash, now in the thumbnail stage (which reads the
        # whole file to decode it anyway).
        quick = dict(Photo.objects.values_list("files__relpath", "quick_hash"))
        _, whole_wall, whole_cpu = timed(lambda: [content.whole_hash_matching(f, quick[f.name]) for f in files])

        # --- thumbnails: vipsthumbnail baseline, then Shoebox ----------------------------
        out = work / "vips"
        out.mkdir()
        c0, w0 = children_cpu(), time.perf_counter()
        subprocess.run(["vipsthumbnail", "--size", "400", "-o", str(out / "%s.jpg[Q=85]"), *map(str, files)],
                       check=True, env=dict(os.environ, VIPS_CONCURRENCY="1"))
        vips_wall, vips_cpu = time.perf_counter() - w0, children_cpu() - c0

        thumb_dir = work / "thumbs"
        hashes = dict(Photo.objects.values_list("files__relpath", "content_hash"))

        def render(sizes):
            for f in files:
                thumbnails.render_thumbnails(
                    str(f), hashes[f.name], thumb_dir=thumb_dir, sizes=sizes,
                    quality=settings.THUMBNAIL_QUALITY, max_pixels=settings.MAX_IMAGE_PIXELS,
                )

        _, grid_wall, grid_cpu = timed(lambda: render({"grid": 400}))
        _, both_wall, both_cpu = timed(lambda: render(settings.THUMBNAIL_SIZES))
    finally:
        benchdb.drop(params)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    n = len(files)
    print()
    ratios = sorted(r[0] / r[2] for r in rounds)
    exif_wall, exif_cpu, scan_wall, scan_cpu, _, _ = sorted(rounds, key=lambda r: r[0] / r[2])[len(rounds) // 2]
    with_after = sorted(r[0] / (r[2] + r[4]) for r in rounds)
    after_wall, after_cpu = sorted((r[4], r[5]) for r in rounds)[len(rounds) // 2]
    print(f"metadata scan (the median of {len(rounds)} interleaved rounds)  files/s   CPU ms/file")
    print(f"  exiftool -json -fast          {n / exif_wall:9.1f}   {1000 * exif_cpu / n:9.2f}")
    print(f"  shoebox scan (quick hash+meta+db) {n / scan_wall:5.1f}   {1000 * scan_cpu / n:9.2f}")
    print(f"  shoebox after the scan        {n / after_wall:9.1f}   {1000 * after_cpu / n:9.2f}")
    print(f"  shoebox rescan (unchanged)    {n / rescan_wall:9.1f}")
    print(f"  whole-file hash, in the thumbnail stage now {1000 * whole_cpu / n:.2f} CPU ms/file "
          f"({pending} of {n} photos waited for it)")
    print(f"  ratio shoebox/exiftool files/s: {(n / scan_wall) / (n / exif_wall):.2f}x   (goal >= 5x; "
          f"rounds {' '.join(f'{r:.2f}' for r in ratios)}, the first {rounds[0][0] / rounds[0][2]:.2f})")
    print(f"  ratio with after the scan:      {with_after[len(rounds) // 2]:.2f}x   "
          f"(rounds {' '.join(f'{r:.2f}' for r in with_after)})")
    print()
    print("thumbnails                        files/s   CPU ms/file")
    print(f"  vipsthumbnail --size 400      {n / vips_wall:9.1f}   {1000 * vips_cpu / n:9.2f}")
    print(f"  shoebox 400 px                {n / grid_wall:9.1f}   {1000 * grid_cpu / n:9.2f}")
    print(f"  shoebox 400 + 1600 px         {n / both_wall:9.1f}   {1000 * both_cpu / n:9.2f}")
    print(f"  CPU per file, vips / shoebox 400 px: {vips_cpu / grid_cpu:.2f}x   (goal >= 1.0: as fast per core)")
    print(f"  CPU per file, vips / shoebox both sizes: {vips_cpu / both_cpu:.2f}x")


if __name__ == "__main__":
    main()
