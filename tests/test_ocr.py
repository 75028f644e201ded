"""Text in photos: the OCR stage with the real PP-OCRv4 models from the rapidocr-onnxruntime wheel.

Photos with known words are drawn here (DejaVu fonts on real corpus photos), imported like any
other photo, and read through the engine; what they say is then found through the search box.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from gallery import engine, libraries, scans, stages
from gallery.models import Photo, PhotoStage
from gallery.runners import THUMBNAIL
from gallery.thumbnails import thumbnail_path
from ocr import reader as ocr_reader
from ocr.models import PhotoText
from ocr.runners import OCR
from tagging import search

pytestmark = pytest.mark.django_db

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
SERIF = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")
SIGN_WORDS = ("GRANDVIEW", "BAKERY")
NO_TEXT = "bundled_photo__cat_chelsea.jpg"


@pytest.fixture
def ocr_on(settings):
    if not FONT.is_file():
        pytest.skip(f"{FONT} is not installed (Debian package fonts-dejavu-core)")
    settings.OCR = True
    settings.OCR_THREADS = 1
    return settings


def draw_sign(corpus: Path, dest: Path) -> Path:
    """A corpus photo with a shop sign pasted on it: "GRANDVIEW BAKERY" above "Open daily 7-19"."""
    photo = Image.open(corpus / "bundled_photo__coffee.jpg").convert("RGB").resize((1200, 800))
    draw = ImageDraw.Draw(photo)
    draw.rectangle((150, 120, 1050, 420), fill=(245, 240, 225))
    draw.text((200, 150), " ".join(SIGN_WORDS), font=ImageFont.truetype(str(FONT), 80), fill=(120, 20, 20))
    draw.text((200, 300), "Open daily 7-19", font=ImageFont.truetype(str(SERIF), 60), fill=(20, 20, 20))
    photo.save(dest, quality=92)
    return dest


def sign_words_box() -> tuple[float, float, float, float]:
    """Where ``draw_sign`` drew the big words: (left, top, right, bottom) as fractions."""
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox(
        (200, 150), " ".join(SIGN_WORDS), font=ImageFont.truetype(str(FONT), 80))
    return left / 1200, top / 800, right / 1200, bottom / 800


def import_and_read(library_dir, corpus, *extra: str):
    draw_sign(corpus, library_dir.path / "bakery.jpg")
    for name in extra:
        library_dir.add(name)
    library, _ = libraries.add_library(str(library_dir.path))
    scans.import_library(library, sync=True)
    return engine.run_pending(OCR)


def test_the_stage_is_registered_after_thumbnails_and_only_when_switched_on(settings):
    settings.OCR = False
    assert OCR not in stages.names()
    settings.OCR = True
    spec = stages.get(OCR)
    assert OCR in stages.names() and spec.needs == (THUMBNAIL,) and spec.rerunnable
    assert stages.get(THUMBNAIL).order < spec.order < stages.get("caption").order
    assert spec.title == "Text in photos" and spec.model().startswith("rapidocr-")


def test_a_photo_with_words_is_read_and_found_by_searching_them(ocr_on, library_dir, corpus):
    result = import_and_read(library_dir, corpus, NO_TEXT)
    assert result["done"] == 2 and result["failed"] == 0

    sign = Photo.objects.get(files__relpath="bakery.jpg")
    cat = Photo.objects.get(files__relpath=NO_TEXT)
    assert PhotoStage.objects.get(photo=sign, stage=OCR).state == PhotoStage.State.DONE
    read = PhotoText.objects.get(photo=sign)
    texts = [line["text"] for line in read.lines]
    # The detector may split a line at a wide gap between words; the order stays the reading order.
    assert " ".join(texts).upper().startswith(" ".join(SIGN_WORDS)), texts
    assert "open daily" in read.text.lower()
    assert read.model == stages.get(OCR).model() and read.seconds > 0
    for line in read.lines:
        assert 0.6 <= line["score"] <= 1
        assert len(line["box"]) == 4 and all(0 <= x <= 1 and 0 <= y <= 1 for x, y in line["box"])
    # The boxes of the sign's big words cover where they were drawn (fractions of the photo).
    drawn = sign_words_box()
    big = [line for line in read.lines if set(line["text"].upper().split()) & set(SIGN_WORDS)]
    xs = [x for line in big for x, _ in line["box"]]
    ys = [y for line in big for _, y in line["box"]]
    found = (min(xs), min(ys), max(xs), max(ys))
    assert all(abs(a - b) < 0.03 for a, b in zip(found, drawn)), (found, drawn)

    found = {r.photo.pk: r for r in search.search("bakery").results}
    assert set(found) == {sign.pk} and "text" in found[sign.pk].signals, "the tile says the words were read"
    assert {r.photo.pk for r in search.search("grandview daily").results} == {sign.pk}
    assert {r.photo.pk for r in search.search("has:text").results} == {sign.pk}
    assert cat.pk not in {r.photo.pk for r in search.search("has:text").results}


def test_a_photo_without_text_gets_a_row_with_no_lines(ocr_on, library_dir, corpus):
    import_and_read(library_dir, corpus, NO_TEXT)
    cat = Photo.objects.get(files__relpath=NO_TEXT)
    read = PhotoText.objects.get(photo=cat)
    assert read.lines == [] and read.text == ""
    assert PhotoStage.objects.get(photo=cat, stage=OCR).state == PhotoStage.State.DONE
    assert not search.search("has:text -bakery").results


def test_an_unreadable_thumbnail_fails_that_photo_with_a_reason(ocr_on, library_dir, corpus):
    draw_sign(corpus, library_dir.path / "bakery.jpg")
    library_dir.add(NO_TEXT)
    library, _ = libraries.add_library(str(library_dir.path))
    scans.import_library(library, sync=True)
    sign = Photo.objects.get(files__relpath="bakery.jpg")
    viewer = thumbnail_path(ocr_on.THUMBNAIL_DIR, sign.content_hash, "viewer")
    viewer.write_bytes(viewer.read_bytes()[:300])  # cut off after the header

    result = engine.run_pending(OCR)

    assert result["done"] == 1 and result["failed"] == 1
    row = PhotoStage.objects.get(photo=sign, stage=OCR)
    assert row.state == PhotoStage.State.FAILED and "truncated" in row.error.lower()
    assert not PhotoText.objects.filter(photo=sign).exists()
    assert PhotoText.objects.filter(photo__files__relpath=NO_TEXT).exists(), "the other photo is read"


def test_the_photo_page_shows_the_text_read(ocr_on, library_dir, corpus, viewer_client):
    import_and_read(library_dir, corpus)
    sign = Photo.objects.get(files__relpath="bakery.jpg")
    page = viewer_client.get(f"/photos/{sign.pk}/").content.decode()
    assert "Text in the photo" in page
    for line in PhotoText.objects.get(photo=sign).lines:
        assert line["text"] in page


def test_the_reader_returns_lines_in_reading_order_with_boxes_as_fractions():
    if not FONT.is_file():
        pytest.skip(f"{FONT} is not installed")
    image = Image.new("RGB", (1000, 600), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 56)
    draw.text((560, 60), "RIGHT", font=font, fill=(0, 0, 0))   # same row as LEFT, drawn first
    draw.text((60, 70), "LEFT", font=font, fill=(0, 0, 0))
    draw.text((300, 400), "BOTTOM", font=font, fill=(0, 0, 0))
    reading = ocr_reader.Reader(threads=1).read(image)
    assert [line.text for line in reading.lines] == ["LEFT", "RIGHT", "BOTTOM"]
    bottom = reading.lines[2].box
    assert 0.25 < bottom[0][0] < 0.35 and 0.62 < bottom[0][1] < 0.72, bottom
    blank = ocr_reader.Reader(threads=1).read(Image.new("RGB", (800, 600), (90, 140, 200)))
    assert blank.lines == [] and blank.regions == 0 and not blank.quick_skip


def test_the_quick_pass_ends_a_photo_without_text_and_lets_text_through(corpus, tmp_path):
    if not FONT.is_file():
        pytest.skip(f"{FONT} is not installed")
    quick = ocr_reader.Reader(threads=1, det_size=1280, quick_size=640)
    with Image.open(corpus / NO_TEXT) as cat:
        skipped = quick.read(cat.convert("RGB").resize((1600, 1063)))
    assert skipped.quick_skip and skipped.lines == [] and skipped.regions == 0
    with Image.open(draw_sign(corpus, tmp_path / "sign.jpg")) as sign:
        read = quick.read(sign.convert("RGB"))
    assert not read.quick_skip and "BAKERY" in read.text.upper()


def test_the_lines_of_a_tilted_sign_read_top_line_first():
    """A sign turned 20° up to the right: its longer second line's middle sits higher than the
    first line's, but it is read second; two words split on one line keep their order."""
    import math

    import numpy as np

    def line(x, y, length, height=40, angle=-20):
        a = math.radians(angle)
        along, down = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
        start = np.array([x, y], float)
        return np.array([start, start + along * length, start + along * length + down * height, start + down * height])

    first = line(100, 300, 300)          # "Pizza Pharmacy"
    second = line(100 + 20, 360, 700)    # "Castle Boston Gallery", below it and longer
    word_a = line(100, 600, 120)         # "Lake" and "City", one line split in two boxes
    a = math.radians(-20)
    word_b = line(100 + 160 * math.cos(a), 600 + 160 * math.sin(a), 120)
    assert ocr_reader.reading_order([second, word_b, first, word_a]) == [2, 0, 3, 1]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_boxes_of_the_text_lie_over_the_image_and_t_toggles_them(ocr_on, library_dir, corpus, live_server,
                                                                     django_user_model):
    from tests.conftest import headless_chromium

    import_and_read(library_dir, corpus)
    sign = Photo.objects.get(files__relpath="bakery.jpg")
    lines = PhotoText.objects.get(photo=sign).lines
    django_user_model.objects.create_user("owner", password="a-long-password-1", is_staff=True)
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(live_server.url + f"/photos/{sign.pk}/")
        page.fill("input[name=username]", "owner")
        page.fill("input[name=password]", "a-long-password-1")
        page.click("button[type=submit]")
        page.wait_for_selector("figure #text-layer:not([hidden])")
        image = page.locator("img#photo").bounding_box()
        layer = page.locator("#text-layer").bounding_box()
        assert all(abs(image[k] - layer[k]) < 2 for k in ("x", "y", "width", "height")), (image, layer)
        assert page.locator("#text-layer polygon").count() == len(lines)
        # The first box sits where the first line was read: its fractions of the image on screen.
        first = page.locator("#text-layer polygon").first.bounding_box()
        xs = [x for x, _ in lines[0]["box"]]
        assert abs(first["x"] - (image["x"] + min(xs) * image["width"])) < 4
        page.keyboard.press("t")
        assert page.locator("#text-layer").is_hidden()
        page.click("#text-toggle")
        assert page.locator("#text-layer").is_visible()


def test_without_the_ocr_package_the_stage_waits_as_unavailable(ocr_on, library_dir, corpus, monkeypatch):
    draw_sign(corpus, library_dir.path / "bakery.jpg")
    library, _ = libraries.add_library(str(library_dir.path))
    scans.import_library(library, sync=True)
    ocr_reader.load.cache_clear()
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # as if it were not installed
    try:
        result = engine.run_pending(OCR)
    finally:
        ocr_reader.load.cache_clear()
    row = PhotoStage.objects.get(photo__files__relpath="bakery.jpg", stage=OCR)
    assert result["unavailable"] == 1 and row.state == PhotoStage.State.UNAVAILABLE
    assert "rapidocr-onnxruntime" in row.error and row.attempts == 0, "no attempt used"
