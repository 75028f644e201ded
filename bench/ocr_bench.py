"""How well and how fast the OCR stage reads text in photos, on photos with known text made here.

Usage: .venv/bin/python bench/ocr_bench.py [--photos 40] [--blank 12] [--threads 1] [--sizes 960,1280,1600]
                                            [--quick 480,640 --det-size 960] [--min-score 0.7]

The set (seeded, the same every run) is drawn at the viewer thumbnail's size (1600 px long edge)
and saved as JPEG q85, as the stage reads it:

* ``--photos`` photos with 1–3 lines of known words: 20 DejaVu faces (sans, serif, mono,
  condensed, bold, italic), cap heights from small print to a shop sign, rotated up to ±25°, dark
  on light or light on dark, on a plate (a sign) or straight on the picture, over real photos
  from ``../shared/corpus/`` or flat/gradient backgrounds;
* ``--blank`` photos without text (corpus photos and their crops): what the detector costs when
  there is nothing to read, and whether it invents text.

Measured, in one process, for RapidOCR's own pipeline as it comes (the baseline: its detector
reads the whole 1600 px image, ``RapidOCR()(image)``) and for ``ocr.reader.Reader`` at each
detector size, and with a quick first detector pass at a smaller size (a photo where it finds no
region is done):

* character error rate (Levenshtein distance / length of the truth, lines joined in reading
  order, case and spacing ignored) and word recall (truth words found among the words read);
* photos/s (wall clock) and CPU seconds per photo, with text and without, and the CPU time of
  each against the baseline's (CPU time: the machine is shared, wall time is noisy);
* false text: blank photos where any line was kept.

Single-threaded by default (one onnxruntime thread, as a worker on a 2-core machine runs it).
Not run by ``make test``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from PIL import Image, ImageDraw, ImageFilter, ImageFont  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from measure import cpu_name  # noqa: E402
CORPUS = ROOT.parent / "shared" / "corpus"
FONTS = Path("/usr/share/fonts/truetype/dejavu")
SIZE = (1600, 1200)

# Photos without text of their own (the orientation test images carry "top"/"left" labels: not used).
BACKGROUNDS = [
    "bundled_photo__coffee.jpg", "bundled_photo__cat_chelsea.jpg", "bundled_photo__rocket_launch.jpg",
    "bundled_photo__flower.jpg", "bundled_photo__astronaut_face.jpg", "bundled_photo__cameraman_gray.jpg",
    "gps__nikon_p6000_DSCN0010.jpg", "gps__nikon_p6000_DSCN0021.jpg",
    "camera_jpeg__canon_eos_40d_thumb_empty_gpsifd.jpg", "phone_jpeg__iphone6_hdr_gps.jpg",
]
WORDS = (
    "main street station coffee bakery open closed daily hotel museum exit platform north south "
    "harbour market garden library bridge avenue parking welcome entrance pharmacy fresh bread "
    "city hall school river park beach road stop ticket office gallery summer festival lake "
    "mountain trail castle church square cinema theatre restaurant pizza books music sale "
    "Berlin Paris Tahoe Boston Arezzo Lisbon Oslo Kyoto"
).split()


@dataclass
class Sample:
    image: bytes  # JPEG
    truth: list[str]  # lines, in reading order


def _background(rng: random.Random) -> Image.Image:
    if rng.random() < 0.7:
        name = rng.choice(BACKGROUNDS)
        with Image.open(CORPUS / name) as im:
            im = im.convert("RGB")
            w, h = im.size
            # a random crop of at least half of each side, scaled to the viewer size
            cw, ch = int(w * rng.uniform(0.5, 1)), int(h * rng.uniform(0.5, 1))
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return im.crop((x, y, x + cw, y + ch)).resize(SIZE, Image.Resampling.BICUBIC)
    a = tuple(rng.randint(0, 255) for _ in range(3))
    b = tuple(rng.randint(0, 255) for _ in range(3))
    grad = Image.linear_gradient("L").resize(SIZE).rotate(rng.choice([0, 90]), expand=False)
    return Image.composite(Image.new("RGB", SIZE, a), Image.new("RGB", SIZE, b), grad)


def _line_text(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.3:
        words.append(str(rng.randint(1, 2099)))
    case = rng.random()
    text = " ".join(words)
    return text.upper() if case < 0.35 else text.title() if case < 0.7 else text


def make_text_photo(rng: random.Random, fonts: list[Path]) -> Sample:
    photo = _background(rng)
    lines = [_line_text(rng) for _ in range(rng.randint(1, 3))]
    font = ImageFont.truetype(str(rng.choice(fonts)), rng.choice([24, 32, 40, 56, 72, 96, 120]))
    spacing = int(font.size * 0.35)
    boxes = [font.getbbox(line) for line in lines]
    width = max(b[2] - b[0] for b in boxes) + 2 * spacing
    height = sum(b[3] - b[1] + spacing for b in boxes) + spacing
    width, height = min(width, SIZE[0] - 40), min(height, SIZE[1] - 40)
    dark = rng.random() < 0.6
    ink = tuple(rng.randint(0, 60) for _ in range(3)) if dark else tuple(rng.randint(200, 255) for _ in range(3))
    plate = rng.random() < 0.6
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if plate:
        paper = tuple(rng.randint(200, 255) for _ in range(3)) if dark else tuple(rng.randint(0, 70) for _ in range(3))
        draw.rounded_rectangle((0, 0, width - 1, height - 1), radius=spacing, fill=paper + (255,))
    y = spacing
    for line, box in zip(lines, boxes):
        stroke = 0 if plate else max(1, font.size // 20)  # text straight on a photo gets an outline
        outline = (255, 255, 255, 255) if dark else (0, 0, 0, 255)
        draw.text((spacing - box[0], y - box[1]), line, font=font, fill=ink + (255,), stroke_width=stroke,
                  stroke_fill=outline)
        y += box[3] - box[1] + spacing
    angle = 0.0 if rng.random() < 0.5 else rng.uniform(-25, 25)
    layer = layer.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    layer.thumbnail((SIZE[0] - 40, SIZE[1] - 40))  # a long line is scaled down to fit (never up)
    x = rng.randint(10, SIZE[0] - layer.width - 10)
    y = rng.randint(10, SIZE[1] - layer.height - 10)
    photo.paste(layer, (x, y), layer)
    if rng.random() < 0.25:
        photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2)))  # a little out of focus
    return Sample(_jpeg(photo), lines)


def make_blank_photo(rng: random.Random) -> Sample:
    return Sample(_jpeg(_background(rng)), [])


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def make_set(photos: int, blank: int, seed: int = 10) -> tuple[list[Sample], list[Sample]]:
    rng = random.Random(seed)
    fonts = sorted(p for p in FONTS.glob("DejaVu*.ttf") if "MathTeX" not in p.name and "ExtraLight" not in p.name)
    if not fonts:
        raise SystemExit(f"no DejaVu fonts in {FONTS} (Debian package fonts-dejavu-core)")
    return [make_text_photo(rng, fonts) for _ in range(photos)], [make_blank_photo(rng) for _ in range(blank)]


# -- scoring --------------------------------------------------------------------------


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def score(truth: list[str], read: list[str]) -> tuple[int, int, int, int]:
    """(edit distance, truth characters, truth words found, truth words)."""
    t, r = _normal(" ".join(truth)), _normal(" ".join(read))
    found_words = _words(" ".join(read))
    hits = 0
    for word in _words(" ".join(truth)):
        if word in found_words:
            found_words.remove(word)
            hits += 1
    return levenshtein(t, r), len(t), hits, len(_words(" ".join(truth)))


def quality(read: list[tuple[list[str], list[tuple[str, float]]]], min_score: float) -> dict:
    """CER, word recall and blank photos with text, keeping lines scoring at least ``min_score``."""
    edits = chars = hits = words = invented = 0
    for truth, lines in read:
        kept = [text for text, s in lines if s >= min_score]
        if truth:
            e, c, h, w = score(truth, kept)
            edits, chars, hits, words = edits + e, chars + c, hits + h, words + w
        else:
            invented += bool(kept)
    return {"cer": edits / max(chars, 1), "recall": hits / max(words, 1), "invented": invented}


# -- readers ---------------------------------------------------------------------------


class Baseline:
    """RapidOCR as it comes: its detector reads the whole image (short side at least 736 px)."""

    name = "RapidOCR() as it comes"

    def __init__(self, threads: int) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)

    def read(self, image: Image.Image) -> list[tuple[str, float]]:
        result, _ = self.engine(image)  # its own cut: text_score 0.5
        return [(str(text), float(score)) for _, text, score in (result or [])]


class Ours:
    def __init__(self, threads: int, det_size: int, min_score: float, quick_size: int = 0) -> None:
        from ocr.reader import Reader

        self.name = f"ocr.reader det {det_size} px" + (f", quick pass {quick_size} px" if quick_size else "")
        # Every line is kept here; the score cut is applied when scoring, so one run measures several.
        self.reader = Reader(threads=threads, det_size=det_size, min_score=0.0, quick_size=quick_size)

    def read(self, image: Image.Image) -> list[tuple[str, float]]:
        return [(line.text, line.score) for line in self.reader.read(image).lines]


def run(reader, texts: list[Sample], blanks: list[Sample], min_score: float) -> dict:
    """Read every photo once; returns the timings and, under "read", each photo's (truth, lines)."""
    seconds_text = seconds_blank = cpu_text = cpu_blank = 0.0
    read = []
    for sample in texts + blanks:
        image = Image.open(io.BytesIO(sample.image)).convert("RGB")
        started, cpu = time.perf_counter(), time.process_time()
        lines = reader.read(image)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        read.append((sample.truth, lines))
        if sample.truth:
            seconds_text += elapsed
            cpu_text += cpu
        else:
            seconds_blank += elapsed
            cpu_blank += cpu
    return {
        **quality(read, min_score), "read": read,
        "text_rate": len(texts) / seconds_text if seconds_text else 0.0,
        "blank_rate": len(blanks) / seconds_blank if seconds_blank else 0.0,
        "cpu_text": cpu_text / max(len(texts), 1), "cpu_blank": cpu_blank / max(len(blanks), 1),
    }


def machine() -> str:
    cpu = cpu_name()
    import onnxruntime

    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"onnxruntime {onnxruntime.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--blank", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", default="960,1280,1600", help="detector sizes to measure (long edge, px)")
    parser.add_argument("--min-score", type=float, default=0.7)
    parser.add_argument("--quick", default="480,640", help="quick first-pass sizes to measure with the default size")
    parser.add_argument("--det-size", type=int, default=960, help="the detector size the quick passes go with")
    args = parser.parse_args()

    texts, blanks = make_set(args.photos, args.blank)
    print(f"# OCR bench: {len(texts)} photos with text, {len(blanks)} without, {SIZE[0]}×{SIZE[1]} JPEG q85, "
          f"{args.threads} thread(s)")
    print(f"# machine: {machine()}")
    readers = [Baseline(args.threads)] + [Ours(args.threads, int(s), args.min_score) for s in args.sizes.split(",") if s]
    readers += [Ours(args.threads, args.det_size, args.min_score, int(q)) for q in args.quick.split(",") if q]
    warm = Image.open(io.BytesIO(texts[0].image)).convert("RGB")
    for reader in readers:  # first runs allocate; not measured
        reader.read(warm)
    results = [(reader.name, run(reader, texts, blanks, 0.5 if isinstance(reader, Baseline) else args.min_score))
               for reader in readers]
    base = results[0][1]
    print("| reader | CER | word recall | photos/s with text | CPU s/photo | × baseline | photos/s without |"
          " CPU s/photo | × baseline | blank photos with text read |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results:
        print(f"| {name} | {r['cer']:.3f} | {r['recall']:.3f} | {r['text_rate']:.2f} | {r['cpu_text']:.2f} | "
              f"{base['cpu_text'] / r['cpu_text']:.2f} | {r['blank_rate']:.2f} | {r['cpu_blank']:.2f} | "
              f"{base['cpu_blank'] / r['cpu_blank']:.2f} | {r['invented']}/{len(blanks)} |")
    print("# × baseline: the baseline's CPU seconds per photo over this reader's (above 1 = faster)")
    for name, r in results[1:]:
        print(f"# {name}: a photo without text costs {r['cpu_blank'] / r['cpu_text']:.2f}× "
              f"the CPU time of one with text")
    chosen = next(r for name, r in results if name == f"ocr.reader det {args.det_size} px")
    print(f"\n# the score cut, det {args.det_size} px (lines under it are dropped)")
    print("| min score | CER | word recall | blank photos with text read |")
    print("|---|---|---|---|")
    for cut in (0.3, 0.5, 0.6, 0.7, 0.8, 0.9):
        q = quality(chosen["read"], cut)
        print(f"| {cut} | {q['cer']:.3f} | {q['recall']:.3f} | {q['invented']}/{len(blanks)} |")
    for truth, lines in chosen["read"]:
        if not truth and any(sc >= args.min_score for _, sc in lines):
            print(f"# read on a photo without drawn text: {[(t, round(sc, 2)) for t, sc in lines if sc >= args.min_score]}")
    print(f"# median truth line: {statistics.median(len(line) for s in texts for line in s.truth)} characters")


if __name__ == "__main__":
    main()
