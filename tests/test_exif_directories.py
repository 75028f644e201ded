"""The scan's own EXIF directory reader gives what Pillow gives, or steps aside for it.

``gallery.exif_directories`` reads the tags the scan uses straight from the EXIF
block; whatever it does not find plainly well formed it leaves to Pillow. Both
are run on every EXIF block of the corpus and on thousands of damaged copies:
where the reader answers, its answer is Pillow's.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from gallery import exif_directories, metadata
from gallery.exif_directories import Unusual

READER = exif_directories.Reader(metadata._TAGS_READ)


def plain(value):
    """Values of both readers in one comparable form (rationals as numerator and denominator)."""
    if hasattr(value, "numerator") and hasattr(value, "denominator") and not isinstance(value, int):
        return ("ratio", value.numerator, value.denominator)
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return "nan"
    return value


def with_pillow(raw: bytes):
    """What ``metadata`` reads through Pillow: IFD0's tags of interest, the EXIF and GPS directories."""
    exif = Image.Exif()
    exif.load(raw)
    ifd0 = {tag: exif[tag] for tag in metadata._TAGS_READ if tag in exif}
    sub = {k: v for k, v in exif.get_ifd(ExifTags.IFD.Exif).items() if k in metadata._TAGS_READ}
    gps = {k: v for k, v in exif.get_ifd(ExifTags.IFD.GPSInfo).items() if k < 32}
    return ifd0, sub, gps


def same_as_pillow(raw: bytes) -> bool | None:
    """True when both agree, None when the reader stepped aside; fails the test when they differ."""
    try:
        ours = READER.read(raw)
    except Unusual:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = with_pillow(raw)
    assert plain(ours) == plain(theirs), raw[:64]
    return True


def exif_blocks(corpus: Path) -> dict[str, bytes]:
    blocks = {}
    for path in sorted(corpus.rglob("*")):
        try:
            with Image.open(path) as image:
                raw = image.info.get("exif")
        except Exception:
            continue
        if raw and not hasattr(image, "tag_v2"):
            blocks[path.name] = metadata._as_bytes(raw)
    return blocks


@pytest.fixture(scope="module")
def blocks(corpus):
    found = exif_blocks(corpus)
    assert len(found) >= 15, sorted(found)
    return found


def test_every_exif_block_of_the_corpus_reads_as_pillow_reads_it(blocks):
    answered = [name for name, raw in blocks.items() if same_as_pillow(raw)]
    # Camera files, edited files, both byte orders: the reader answers for nearly all of them.
    assert len(answered) >= len(blocks) - 3, set(blocks) - set(answered)


def test_damaged_blocks_are_read_as_pillow_reads_them_or_left_to_pillow(blocks):
    rng = random.Random(20261206)
    answered = stepped_aside = 0
    for name, raw in sorted(blocks.items()):
        for _ in range(200):
            damaged = bytearray(raw)
            for _ in range(rng.choice((1, 2, 4, 16))):
                # Mostly the directories near the start; sometimes anywhere (values, later directories).
                position = rng.randrange(min(len(damaged), 600) if rng.random() < 0.7 else len(damaged))
                damaged[position] = rng.randrange(256)
            if rng.random() < 0.2:
                del damaged[rng.randrange(len(damaged)) :]
            if same_as_pillow(bytes(damaged)):
                answered += 1
            else:
                stepped_aside += 1
    assert answered > 1000 and stepped_aside > 100, (answered, stepped_aside)


@pytest.mark.parametrize("raw", [
    b"", b"Exif\x00\x00", b"Exif\x00\x00II*\x00", b"MM\x00+\x00\x08\x00\x00", b"II*\x00\x08\x00\x00\x00\x00\x00",
    b"II*\x00\xff\xff\xff\x7f", b"II*\x00\x08\x00\x00\x00\xff\xff",
])  # fmt: skip
def test_truncated_or_empty_blocks_are_left_to_pillow(raw):
    with pytest.raises(Unusual):
        READER.read(raw)


def test_a_camera_jpeg_reads_the_same_facts_through_either_reader(corpus):
    path = corpus / "gps__nikon_p6000_DSCN0010.jpg"
    with Image.open(path) as image:
        raw = image.info["exif"]
        log = metadata._Log()
        fast = metadata._exif_facts(*READER.read(raw), log)
        exif = Image.Exif()
        exif.load(raw)
        slow = metadata._exif_facts(
            {t: exif[t] for t in metadata._TAGS_READ if t in exif},
            dict(exif.get_ifd(ExifTags.IFD.Exif)), dict(exif.get_ifd(ExifTags.IFD.GPSInfo)), log,
        )
    assert fast == slow
    assert fast["camera_make"] == "NIKON" and fast["latitude"] and fast["dates"]
