"""gallery.imaging: what a file is, by content, and opening it safely.

Every file of the shared corpus has an expected outcome in ``EXPECTED``; a new
corpus file without one fails ``test_every_corpus_file_has_an_expectation``.
None of these tests needs the database.
"""

from __future__ import annotations

import io
import os
import struct
import time
from pathlib import Path

import pytest
from PIL import Image

from gallery.imaging import BrokenImage, ImageInfo, SkipFile, identify, open_upright

LIMIT = 200_000_000

# file → what identify() says: a format (with its stored size where it is a
# fact worth pinning), or the exception and a piece of its reason.
EXPECTED: dict[str, tuple] = {
    "avif__exif_xmp.avif": ("AVIF", (120, 120)),
    "avif__olympus_epl8_icc_xmp.avif": ("AVIF", (1920, 1080)),
    "avif__rgba_alpha.avif": ("AVIF", (64, 64)),
    "bad__bad_mpo_header.jpg": ("JPEG", (640, 480)),  # Pillow falls back to the base JPEG
    "bad__broken_header.png": (BrokenImage, "PNG: corrupt header"),
    "bad__decompression_bomb.gif": (BrokenImage, "image too large: 4,364,696,535 pixels (limit 200,000,000)"),
    "bad__heic_header_only.heic": ("HEIF", (1596, 1064)),  # header fine; decoding fails (below)
    "bad__invalid_exif.jpg": ("JPEG", (200, 200)),
    "bad__junk_before_soi.jpg": ("JPEG", (1024, 768)),
    "bad__png_bomb_20000x20000.png": (BrokenImage, "image too large: 400,000,000 pixels (limit 200,000,000)"),
    "bad__random_bytes.jpg": (SkipFile, "not a recognised image format"),
    "bad__truncated.png": ("PNG", (640, 480)),
    "bad__truncated_half.jpg": ("JPEG", (640, 480)),
    "bad__truncated_in_exif.jpg": (BrokenImage, "truncated image data (file ends early)"),
    "bad__truncated_progressive.jpg": ("JPEG", (100, 100)),
    "bad__zero_bytes.jpg": (SkipFile, "empty file (0 bytes)"),
    "bmp__pal8.bmp": ("BMP", (127, 64)),
    "bmp__rgb24.bmp": ("BMP", (127, 64)),
    "bundled_photo__astronaut_face.jpg": ("JPEG", (512, 512)),
    "bundled_photo__cameraman_gray.jpg": ("JPEG", (512, 512)),
    "bundled_photo__cat_chelsea.jpg": ("JPEG", (451, 300)),
    "bundled_photo__coffee.jpg": ("JPEG", (600, 400)),
    "bundled_photo__flower.jpg": ("JPEG", (640, 427)),
    "bundled_photo__rocket_launch.jpg": ("JPEG", (640, 427)),
    "camera_jpeg__canon_digital_ixus_2001.jpg": ("JPEG", (640, 480)),
    "camera_jpeg__canon_eos_40d_thumb_empty_gpsifd.jpg": ("JPEG", (100, 68)),
    "camera_jpeg__canon_sx60_hdr_orient6.jpg": ("JPEG", (2048, 1536)),  # stored size, before orientation
    "camera_jpeg__nikon_d70_orient6_makernote.jpg": ("JPEG", (150, 91)),
    "camera_jpeg__nikon_d70s_gps_xmp.jpg": ("JPEG", (1488, 2240)),
    "camera_jpeg__ricoh_rdc5300_no_datetime.jpg": ("JPEG", (896, 600)),
    "camera_jpeg__sony_slt_a58_uppercase_ext.JPG": ("JPEG", (10, 10)),
    "cmyk__jpeg_cmyk_adobe.jpg": ("JPEG", (100, 100)),
    "edge__jpeg_no_metadata.jpg": ("JPEG", (150, 91)),
    "gif__animated_42frames.gif": ("GIF", (245, 245)),
    "gif__static_transparent.gif": ("GIF", (200, 150)),
    "gps__fujifilm_s1pro_exiftool.jpg": ("JPEG", (120, 80)),
    "gps__nikon_p6000_DSCN0010.jpg": ("JPEG", (640, 480)),
    "gps__nikon_p6000_DSCN0021.jpg": ("JPEG", (640, 480)),
    "heic__canon_eos_r5.HIF": ("HEIF", (2400, 1600)),
    "heic__iphone13promax.heic": ("HEIF", (3024, 4032)),  # libheif's size, after its irot
    "heic__nikon_d5300_gps_xmp_small.heic": ("HEIF", (300, 200)),
    "heic__sony_a7cii_rotated_pruned.HIF": ("HEIF", (4672, 7008)),
    "icc__big_icc_progressive.jpg": ("JPEG", (425, 250)),
    "icc__tiff_rgba_icc.tiff": ("TIFF", (196, 257)),
    "jxl__reagan_with_metadata.jxl": ("JXL", (200, 130)),
    "jxl__test.jxl": ("JXL", (1280, 1024)),
    "mpo__nintendo_3ds_stereo.mpo": ("MPO", (640, 480)),
    "nonimage__document.pdf": (SkipFile, "not an image: PDF document"),
    "nonimage__quicktime_video.mov": (SkipFile, "video: not yet supported (QuickTime)"),
    "nonimage__text_named.jpg": (SkipFile, "not an image: text file"),
    "ocr_text__ocr_on_photo.jpg": ("JPEG", (1200, 800)),
    "orientation__landscape_1.jpg": ("JPEG", (600, 450)),
    "orientation__landscape_2.jpg": ("JPEG", (600, 450)),
    "orientation__landscape_3.jpg": ("JPEG", (600, 450)),
    "orientation__landscape_4.jpg": ("JPEG", (600, 450)),
    "orientation__landscape_6.jpg": ("JPEG", (450, 600)),
    "orientation__landscape_8.jpg": ("JPEG", (450, 600)),
    "orientation__png_xmp_orient3_rgba_icc.png": ("PNG", (326, 268)),
    "orientation__webp_exif_orient6.webp": ("WEBP", (128, 128)),
    "other__photoshop.psd": ("PSD", (128, 128)),  # imported: Pillow reads the composite
    "phone_jpeg__iphone6_hdr_gps.jpg": ("JPEG", (3264, 2448)),
    "phone_jpeg__iphone7_stub_gps.jpg": ("JPEG", (8, 8)),
    "phone_jpeg__jolla_xmp.jpg": ("JPEG", (3264, 2448)),
    "phone_jpeg__pixel8pro_stub_xmp_gps.jpg": ("JPEG", (8, 8)),
    "phone_jpeg__samsung_sm_g930v_gps_orient6.jpg": ("JPEG", (4032, 3024)),
    "phone_jpeg__sony_xperia_d5803_xmp.jpg": ("JPEG", (720, 1280)),
    "png__16bit_rgb_coffee.png": ("PNG", (600, 400)),
    "png__apng_16bit_rgba_animated.png": ("PNG", (128, 64)),
    "png__exif_chunk.png": ("PNG", (512, 512)),
    "png__nikon_d70_exif_icc_xmp.png": ("PNG", (320, 211)),
    "png__rgb_hopper.png": ("PNG", (128, 128)),
    "png__rgba_alpha.png": ("PNG", (200, 150)),
    "progressive__jpeg_large_metadata.jpg": ("JPEG", (200, 130)),
    "progressive__rocket_progressive_exif.jpg": ("JPEG", (640, 427)),
    "raw__canon_cr2_stub.cr2": ("RAW-CR2", (0, 0)),  # libraw cannot parse the stub: size unknown
    "raw__canon_r6_pruned.CR3": ("RAW-CR3", (3584, 2386)),
    "raw__iphone12pro_proraw_pruned.dng": ("RAW-DNG", (4032, 3024)),
    "raw__nikon_d70_nef_stub.nef": ("RAW-NEF", (3039, 2014)),
    "raw__sony_a7iii_arw_stub.ARW": ("RAW-ARW", (0, 0)),
    "sidecar__xmp_sidecar.xmp": (SkipFile, "XMP sidecar: read together with its photo"),
    "tiff__16bit_gray.tif": ("TIFF", (64, 64)),
    "tiff__16bit_rgb.tiff": ("TIFF", (100, 40)),
    "tiff__adobe_deflate_icc_xmp.tif": ("TIFF", (278, 374)),
    "tiff__multipage_3_photos_lzw.tiff": ("TIFF", (600, 400)),
    "webp__animated_lossless_42frames.webp": ("WEBP", (245, 245)),
    "webp__lossless_cat.webp": ("WEBP", (451, 300)),
    "webp__lossy_exif_canon.webp": ("WEBP", (480, 360)),
    "wrongext__jpeg_named.png": ("JPEG", (640, 480)),
    "wrongext__png_named.jpg": ("PNG", (128, 128)),
    "xmp_iptc__adobe_bluesquare_iptc_xmp.jpg": ("JPEG", (360, 216)),
    "xmp_iptc__extended_xmp_multi_segment.jpg": ("JPEG", (8, 8)),
    "xmp_iptc__iptc_keywords_caption_city.jpg": ("JPEG", (8, 8)),
    "xmp_iptc__long_image_description.jpg": ("JPEG", (100, 73)),
    "xmp_iptc__mwg_conflicting_exif_iptc_xmp.jpg": ("JPEG", (8, 8)),
    "xmp_iptc__nikon_d1x_reagan_iptc_xmp_icc.jpg": ("JPEG", (200, 130)),
    "xmp_iptc__xmp_utf16_subject_icc.jpg": ("JPEG", (8, 8)),
}

FRAMES = {
    "gif__animated_42frames.gif": 42,
    "webp__animated_lossless_42frames.webp": 42,
    "png__apng_16bit_rgba_animated.png": 3,
    "tiff__multipage_3_photos_lzw.tiff": 3,
    "mpo__nintendo_3ds_stereo.mpo": 2,
    "other__photoshop.psd": 1,  # two layers, but we show the composite
}

MIME_TYPES = {
    "JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp", "TIFF": "image/tiff",
    "BMP": "image/bmp", "AVIF": "image/avif", "JXL": "image/jxl", "MPO": "image/mpo",
    "PSD": "image/vnd.adobe.photoshop", "RAW-CR2": "image/x-canon-cr2", "RAW-CR3": "image/x-canon-cr3",
    "RAW-DNG": "image/x-adobe-dng", "RAW-NEF": "image/x-nikon-nef", "RAW-ARW": "image/x-sony-arw",
}  # fmt: skip

# What open_upright makes of the files that identify() accepts but whose pixels are bad.
UNDECODABLE = {
    "bad__heic_header_only.heic": "truncated image data (file ends early)",
    "bad__truncated.png": "truncated image data (file ends early)",
    "bad__truncated_half.jpg": "truncated image data (file ends early)",
    "bad__truncated_progressive.jpg": "truncated image data (file ends early)",
    "raw__canon_cr2_stub.cr2": "RAW (Canon CR2): libraw could not decode it and it has no embedded preview",
    "raw__canon_r6_pruned.CR3": "RAW (Canon CR3): libraw could not decode it and it has no embedded preview",
    "raw__nikon_d70_nef_stub.nef": "RAW (Nikon NEF): libraw could not decode it and it has no embedded preview",
    "raw__sony_a7iii_arw_stub.ARW": "RAW (Sony ARW): libraw could not decode it and it has no embedded preview",
}


def corpus_files(corpus: Path) -> list[str]:
    return sorted(p.name for p in corpus.iterdir() if p.is_file() and p.suffix not in (".tsv", ".md"))


def test_every_corpus_file_has_an_expectation(corpus):
    assert set(corpus_files(corpus)) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_identify_classifies_each_corpus_file_by_content(corpus, name):
    expected, detail = EXPECTED[name]
    if isinstance(expected, type):
        with pytest.raises(expected) as raised:
            identify(corpus / name, max_pixels=LIMIT)
        assert detail in raised.value.reason
        return
    info = identify(corpus / name, max_pixels=LIMIT)
    try:
        assert isinstance(info, ImageInfo)
        assert info.format == expected
        assert (info.width, info.height) == detail
        assert info.is_raw == expected.startswith("RAW-")
        assert info.frames == FRAMES.get(name, 1)
        if name == "png__apng_16bit_rgba_animated.png":
            assert info.mime_type == "image/apng"
        elif expected == "HEIF":
            assert info.mime_type in ("image/heic", "image/heif")  # as libheif names the brand
        elif expected in MIME_TYPES:
            assert info.mime_type == MIME_TYPES[expected]
        else:
            assert info.mime_type.startswith("image/")
    finally:
        info.close()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_open_upright_decodes_or_explains_each_corpus_file(corpus, name):
    """Every file ends as an RGB image or a SkipFile/BrokenImage with a reason: nothing else escapes."""
    expected, detail = EXPECTED[name]
    if isinstance(expected, type):
        with pytest.raises(expected) as raised:
            open_upright(corpus / name, target=64, max_pixels=LIMIT)
        assert detail in raised.value.reason
    elif name in UNDECODABLE:
        with pytest.raises(BrokenImage) as raised:
            open_upright(corpus / name, target=64, max_pixels=LIMIT)
        assert raised.value.reason == UNDECODABLE[name]
    else:
        image = open_upright(corpus / name, target=64, max_pixels=LIMIT)
        assert image.mode == "RGB"
        assert max(image.size) <= 64


def test_identify_opens_the_header_without_decoding_pixels(corpus):
    for name, (expected, _) in EXPECTED.items():
        if isinstance(expected, type):
            continue
        info = identify(corpus / name, max_pixels=LIMIT)
        if info.image is not None:
            # Pillow allocates the pixel store (``_im``) only when it decodes.
            assert info.image._im is None, f"{name}: identify decoded pixels"
        info.close()


def test_identify_is_much_cheaper_than_decoding_a_12_megapixel_jpeg(corpus):
    path = corpus / "phone_jpeg__samsung_sm_g930v_gps_orient6.jpg"
    identify(path, max_pixels=LIMIT).close()  # plugins imported

    def best_of(n, call):
        best = float("inf")
        for _ in range(n):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
        return best

    identify_s = best_of(20, lambda: identify(path, max_pixels=LIMIT).close())
    with Image.open(path) as image:
        start = time.perf_counter()
        image.load()
        decode_s = time.perf_counter() - start
    assert identify_s < 0.005, f"identify took {identify_s * 1000:.2f} ms"
    assert identify_s * 20 < decode_s


def test_a_pixel_limit_below_the_image_size_refuses_it(corpus):
    with pytest.raises(BrokenImage) as raised:
        identify(corpus / "orientation__landscape_1.jpg", max_pixels=100_000)
    assert raised.value.reason == "image too large: 270,000 pixels (limit 100,000)"
    with pytest.raises(BrokenImage):
        open_upright(corpus / "orientation__landscape_1.jpg", target=100, max_pixels=100_000)


@pytest.mark.parametrize("name", ["bad__decompression_bomb.gif", "bad__png_bomb_20000x20000.png"])
def test_bombs_are_refused_by_our_limit_even_with_pillows_limit_off(corpus, monkeypatch, name):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    for call in (
        lambda: identify(corpus / name, max_pixels=LIMIT),
        lambda: open_upright(corpus / name, target=400, max_pixels=LIMIT),
    ):
        with pytest.raises(BrokenImage) as raised:
            call()
        assert raised.value.reason.startswith("image too large: ")
        assert "(limit 200,000,000)" in raised.value.reason


def test_the_jxl_pixel_limit_is_checked_before_the_plugin_decodes(corpus, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("the JXL plugin was asked to decode")

    monkeypatch.setattr(Image, "open", no_decoding)
    with pytest.raises(BrokenImage) as raised:
        open_upright(corpus / "jxl__test.jxl", target=400, max_pixels=1_000_000)
    assert raised.value.reason == "image too large: 1,310,720 pixels (limit 1,000,000)"


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (64, 64), (333, 101), (800, 450), (1280, 1024), (4000, 1)])
@pytest.mark.parametrize("container", [False, True])
def test_jxl_sizes_are_read_from_the_codestream_header(tmp_path, size, container):
    path = tmp_path / "x.jxl"
    Image.new("RGB", size, (10, 20, 30)).save(path, "JXL", effort=1, use_container=container)
    info = identify(path, max_pixels=LIMIT)
    assert (info.format, info.width, info.height, info.image) == ("JXL", *size, None)
    assert open_upright(path, target=5000, max_pixels=LIMIT).size == size


def test_bytes_paths_with_non_utf8_names_work(tmp_path, corpus):
    folder = os.fsencode(tmp_path)
    jpeg = folder + b"/caf\xe9 \xff.jpg"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(os.fsdecode(jpeg), "JPEG")
    info = identify(jpeg, max_pixels=LIMIT)
    assert (info.format, info.width, info.height) == ("JPEG", 300, 200)
    info.close()
    assert open_upright(jpeg, target=100, max_pixels=LIMIT).size == (100, 67)

    # libraw cannot take such a name: the RAW path hands it a file object instead.
    dng = folder + b"/\xe9t\xe9.dng"
    Path(os.fsdecode(dng)).write_bytes((corpus / "raw__iphone12pro_proraw_pruned.dng").read_bytes())
    info = identify(dng, max_pixels=LIMIT)
    assert (info.format, info.width, info.height) == ("RAW-DNG", 4032, 3024)
    info.close()
    assert open_upright(dng, target=100, max_pixels=LIMIT).size == (75, 100)


def test_identify_raises_oserror_only_when_the_file_cannot_be_read(tmp_path):
    with pytest.raises(FileNotFoundError):
        identify(tmp_path / "missing.jpg", max_pixels=LIMIT)
    with pytest.raises(IsADirectoryError):
        identify(tmp_path, max_pixels=LIMIT)


EBML = b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01"  # Matroska/WebM header start, DocType follows


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00" * 64


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (ftyp(b"qt  ", b"qt  "), "video: not yet supported (QuickTime)"),
        (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video: not yet supported (MP4)"),
        (ftyp(b"mp42", b"isom"), "video: not yet supported (MP4)"),
        (ftyp(b"M4V ", b"M4V ", b"mp42"), "video: not yet supported (M4V)"),
        (ftyp(b"3gp5", b"3gp5"), "video: not yet supported (3GPP)"),
        (ftyp(b"M4A ", b"M4A "), "not an image: audio file (M4A)"),
        (b"RIFF\x00\x10\x00\x00AVI LIST" + b"\x00" * 64, "video: not yet supported (AVI)"),
        (EBML + b"\x42\x82\x84webm" + b"\x00" * 64, "video: not yet supported (WebM)"),
        (EBML + b"\x42\x82\x88matroska" + b"\x00" * 64, "video: not yet supported (Matroska)"),
        (b"<!DOCTYPE html>\n<html><head><title>x</title></head><body>hi</body></html>", "not an image: HTML document"),
        (b"<html>\n<body>no doctype</body></html>", "not an image: HTML document"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
         "unsupported image format: SVG (vector graphics)"),
        (b'<?xml version="1.0"?>\n<catalog><item/></catalog>', "not an image: XML document"),
        ('\ufeff<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>'.encode("utf-16"),
         "XMP sidecar: read together with its photo"),
        ("Grüße aus Köln — notes.\n".encode() * 10, "not an image: text file"),
        (b"PK\x03\x04" + b"\x00" * 100, "not an image: ZIP archive"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"\x00" * 64, "not an image: PDF document"),
    ],
)
def test_non_images_are_skipped_with_a_description(tmp_path, content, reason):
    path = tmp_path / "IMG_0001.jpg"  # the extension promises a photo; the content decides
    path.write_bytes(content)
    with pytest.raises(SkipFile) as raised:
        identify(path, max_pixels=LIMIT)
    assert reason in raised.value.reason


@pytest.mark.parametrize(
    ("brands", "expected"),
    [
        ((b"heic", b"mif1", b"heic"), "HEIF"),
        ((b"mif1", b"mif1", b"heic"), "HEIF"),
        ((b"avif", b"avif", b"mif1", b"miaf"), "AVIF"),
        ((b"mif1", b"mif1", b"avif"), "AVIF"),
        ((b"crx ", b"crx ", b"isom"), "RAW-CR3"),
    ],
)
def test_iso_media_image_brands_are_not_mistaken_for_video(tmp_path, brands, expected):
    """HEIF/AVIF/CR3 share MP4's box format; their brands make them images."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(ftyp(*brands))  # brands only, no image inside
    try:
        info = identify(path, max_pixels=LIMIT)
    except BrokenImage as exc:
        assert exc.reason.startswith(f"{expected}: corrupt header")
    else:
        assert info.format == expected
        info.close()


def test_a_dng_named_tif_is_still_raw(tmp_path, corpus):
    path = tmp_path / "scan.tif"
    path.write_bytes((corpus / "raw__iphone12pro_proraw_pruned.dng").read_bytes())
    info = identify(path, max_pixels=LIMIT)
    assert (info.format, info.is_raw) == ("RAW-DNG", True)
    info.close()


def test_an_unsupported_psd_variant_is_skipped_not_broken(tmp_path):
    # A 16-bit Lab PSD header: Pillow reads only 8-bit bitmap/grey/palette/RGB/CMYK.
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 64, 64, 16, 9)
    path = tmp_path / "lab.psd"
    path.write_bytes(header + b"\x00" * 256)
    with pytest.raises(SkipFile) as raised:
        identify(path, max_pixels=LIMIT)
    assert raised.value.reason.startswith("unsupported image format: Photoshop PSD")


def test_other_formats_pillow_knows_by_signature_are_accepted(tmp_path):
    path = tmp_path / "scan.dat"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(path, "JPEG2000")
    info = identify(path, max_pixels=LIMIT)
    assert (info.format, info.width, info.height) == ("JPEG2000", 40, 30)
    info.close()
    assert open_upright(path, target=20, max_pixels=LIMIT).size == (20, 15)


def test_a_truncated_file_is_broken_with_a_reason(tmp_path, corpus):
    data = (corpus / "bundled_photo__coffee.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    identify(path, max_pixels=LIMIT).close()  # the header is intact
    with pytest.raises(BrokenImage) as raised:
        open_upright(path, target=200, max_pixels=LIMIT)
    assert raised.value.reason == "truncated image data (file ends early)"


def test_identify_returns_an_open_header_image_for_the_metadata_reader(corpus):
    info = identify(corpus / "gps__nikon_p6000_DSCN0010.jpg", max_pixels=LIMIT)
    with info.image as image:
        assert image.getexif()[0x010F] == "NIKON"  # Make
    info = identify(corpus / "raw__nikon_d70_nef_stub.nef", max_pixels=LIMIT)
    with info.image as image:  # Pillow reads a NEF's TIFF structure: EXIF is there
        assert image.getexif()[0x010F] == "NIKON CORPORATION"


def test_open_upright_returns_a_detached_rgb_image(corpus):
    image = open_upright(corpus / "bundled_photo__cameraman_gray.jpg", target=100, max_pixels=LIMIT)
    assert image.mode == "RGB" and image.size == (100, 100)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")  # usable after the source file is closed


def test_a_truncated_jxl_is_broken_with_a_reason(tmp_path, corpus):
    data = (corpus / "jxl__test.jxl").read_bytes()
    path = tmp_path / "cut.jxl"
    path.write_bytes(data[: len(data) // 2])
    assert identify(path, max_pixels=LIMIT).width == 1280  # the header is intact
    with pytest.raises(BrokenImage) as raised:
        open_upright(path, target=200, max_pixels=LIMIT)
    assert raised.value.reason == "JXL: corrupt or truncated image data (libjxl could not decode it)"
