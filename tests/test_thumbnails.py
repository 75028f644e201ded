"""gallery.thumbnails (and the decoding it relies on, gallery.imaging.open_upright).

Pixels are checked, not just sizes: orientation against the upright render
of the same scene, colour against LittleCMS's prediction and against
vipsthumbnail where it is installed. None of these tests needs the database.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from gallery import imaging
from gallery.imaging import BACKGROUND, BrokenImage, open_upright
from gallery.thumbnails import render_thumbnails, thumbnail_path
from tests.conftest import require_tool

LIMIT = 200_000_000
SIZES = {"grid": 400, "viewer": 1600}
HASH = "3f" + "a1" * 31


def render(source, thumb_dir: Path, sizes=SIZES) -> dict[str, Image.Image]:
    """Render thumbnails and read them back (RGB, fully loaded)."""
    paths = render_thumbnails(source, HASH, thumb_dir=thumb_dir, sizes=sizes, quality=90, max_pixels=LIMIT)
    images = {}
    for name, path in paths.items():
        with Image.open(path) as image:
            assert image.format == "JPEG"
            images[name] = image.convert("RGB")
    return images


def gray(image: Image.Image, size=(64, 48)) -> np.ndarray:
    """A small greyscale array for comparing scenes."""
    return np.asarray(image.convert("L").resize(size, Image.Resampling.BOX), dtype=np.float64)


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def vips_thumbnail(source: Path, tmp_path: Path, size: int, *, to_srgb: bool) -> Image.Image:
    """vipsthumbnail's render of ``source`` (alpha flattened on our background)."""
    require_tool("vipsthumbnail", "libvips-tools")
    out = tmp_path / f"vips-{source.stem}.png"  # absolute: a relative -o lands beside the source
    command = ["vipsthumbnail", str(source), "--size", f"{size}>", "-o", str(out)]
    if to_srgb:
        command[-2:-2] = ["--export-profile", "srgb"]
    subprocess.run(command, check=True, capture_output=True)
    with Image.open(out) as image:
        image = image.convert("RGBA")
    flat = Image.new("RGB", image.size, BACKGROUND)
    flat.paste(image, mask=image.getchannel("A"))
    return flat


# ---------------------------------------------------------------------------
# Paths, sizes, atomic writes
# ---------------------------------------------------------------------------


def test_thumbnail_path_fans_out_by_hash_prefix(tmp_path):
    assert thumbnail_path(tmp_path, "abcdef12", "grid") == tmp_path / "ab" / "abcdef12-grid.jpg"
    for bad_hash, bad_name in (("../etc", "grid"), ("a", "grid"), ("abcd", "../x"), ("ab/cd", "grid")):
        with pytest.raises(ValueError):
            thumbnail_path(tmp_path, bad_hash, bad_name)


def test_each_size_has_the_asked_long_edge_from_a_12_megapixel_photo(tmp_path, corpus):
    # 4032×3024 stored, Orientation=6: portrait once upright.
    images = render(corpus / "phone_jpeg__samsung_sm_g930v_gps_orient6.jpg", tmp_path)
    assert images["grid"].size == (300, 400)
    assert images["viewer"].size == (1200, 1600)


def test_small_sources_are_never_upscaled(tmp_path, corpus):
    images = render(corpus / "orientation__landscape_1.jpg", tmp_path)  # 600×450
    assert images["grid"].size == (400, 300)
    assert images["viewer"].size == (600, 450)
    images = render(corpus / "phone_jpeg__iphone7_stub_gps.jpg", tmp_path)  # 8×8
    assert images["grid"].size == images["viewer"].size == (8, 8)


def test_thumbnails_are_written_atomically_without_leftovers(tmp_path, corpus):
    paths = render_thumbnails(
        corpus / "bundled_photo__coffee.jpg", HASH, thumb_dir=tmp_path, sizes=SIZES, quality=85, max_pixels=LIMIT
    )
    assert paths == {name: thumbnail_path(tmp_path, HASH, name) for name in SIZES}
    assert sorted(p.name for p in (tmp_path / HASH[:2]).iterdir()) == [f"{HASH}-grid.jpg", f"{HASH}-viewer.jpg"]
    assert not list(tmp_path.rglob("*.part"))


def test_a_failed_write_leaves_no_part_file_and_keeps_the_old_thumbnail(tmp_path, corpus, monkeypatch):
    source = corpus / "bundled_photo__coffee.jpg"
    render_thumbnails(source, HASH, thumb_dir=tmp_path, sizes={"grid": 400}, quality=85, max_pixels=LIMIT)
    grid = thumbnail_path(tmp_path, HASH, "grid")
    before = grid.read_bytes()

    def disk_full(self, fp, *args, **kwargs):
        fp.write(b"\xff\xd8\xff half a JPEG")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        render_thumbnails(source, HASH, thumb_dir=tmp_path, sizes={"grid": 200}, quality=85, max_pixels=LIMIT)
    assert grid.read_bytes() == before
    assert not list(tmp_path.rglob("*.part"))


def test_a_thumbnail_is_on_disk_before_its_name_is(tmp_path, corpus, monkeypatch):
    # A crash right after the rename must not leave an empty or half-written JPEG under the real
    # name: the data is fsynced before os.replace, and the folder (the rename itself) after it.
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    render_thumbnails(corpus / "bundled_photo__coffee.jpg", HASH, thumb_dir=tmp_path, sizes={"grid": 400},
                      quality=85, max_pixels=LIMIT)
    assert events == ["fsync file", "replace", "fsync folder"]


def test_stale_part_files_of_the_same_thumbnail_are_removed_when_it_is_written(tmp_path, corpus):
    # A worker killed mid-write leaves NAME.<random>.part behind; the next write of that
    # thumbnail removes the ones older than a few minutes — and nothing else.
    folder = tmp_path / HASH[:2]
    folder.mkdir()
    other_hash = HASH[:2] + "b2" * 31
    an_hour_ago = time.time() - 3600
    stale = folder / f"{HASH}-grid.jpg.dead0001.part"
    in_flight = folder / f"{HASH}-grid.jpg.beef0002.part"  # another worker writing right now
    other = folder / f"{other_hash}-grid.jpg.dead0003.part"
    for part in (stale, in_flight, other):
        part.write_bytes(b"\xff\xd8 half a JPEG")
    for part in (stale, other):
        os.utime(part, (an_hour_ago, an_hour_ago))

    render_thumbnails(corpus / "bundled_photo__coffee.jpg", HASH, thumb_dir=tmp_path, sizes={"grid": 400},
                      quality=85, max_pixels=LIMIT)
    assert not stale.exists()
    assert in_flight.exists(), "a recent .part may belong to a write in progress"
    assert other.exists(), "only the thumbnail being written is looked at"
    assert thumbnail_path(tmp_path, HASH, "grid").is_file()


@pytest.mark.parametrize(
    "name",
    [
        "bad__truncated_half.jpg",
        "bad__truncated_progressive.jpg",
        "bad__truncated.png",
        "bad__truncated_in_exif.jpg",
        "bad__heic_header_only.heic",
    ],
)
def test_truncated_files_raise_broken_image_with_a_reason(tmp_path, corpus, name):
    with pytest.raises(BrokenImage) as raised:
        render_thumbnails(corpus / name, HASH, thumb_dir=tmp_path, sizes=SIZES, quality=85, max_pixels=LIMIT)
    assert raised.value.reason == "truncated image data (file ends early)"
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "nothing written for a broken image"


# ---------------------------------------------------------------------------
# Orientation, on pixels
# ---------------------------------------------------------------------------

# EXIF orientation → the transpose that turns the upright scene into the stored pixels.
STORED_FROM_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.fixture(scope="module")
def upright_scene(corpus, tmp_path_factory) -> np.ndarray:
    images = render(corpus / "orientation__landscape_1.jpg", tmp_path_factory.mktemp("upright"))
    return gray(images["grid"])


def with_orientation(corpus: Path, folder: Path, orientation: int, fmt: str = "JPEG") -> Path:
    """landscape_1 stored as a camera with ``orientation`` would store it, tagged accordingly."""
    with Image.open(corpus / "orientation__landscape_1.jpg") as upright:
        stored = upright.transpose(STORED_FROM_UPRIGHT[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = folder / f"orientation_{orientation}.{fmt.lower()}"
    if fmt == "TIFF":
        stored.save(path, fmt, tiffinfo={0x0112: orientation})
    else:
        stored.save(path, fmt, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("orientation", [2, 3, 4, 6, 8])
def test_corpus_exif_orientations_render_upright(tmp_path, corpus, upright_scene, orientation):
    images = render(corpus / f"orientation__landscape_{orientation}.jpg", tmp_path)
    assert images["grid"].size == (400, 300)
    # Same scene: a few grey levels of JPEG/resampling noise. A wrong turn differs by tens.
    assert np.abs(gray(images["grid"]) - upright_scene).mean() < 4


@pytest.mark.parametrize("orientation", [5, 7])
def test_generated_transposed_orientations_render_upright(tmp_path, corpus, upright_scene, orientation):
    path = with_orientation(corpus, tmp_path, orientation)
    with Image.open(path) as stored:
        assert stored.size == (450, 600) and stored.getexif()[0x0112] == orientation
    images = render(path, tmp_path)
    assert images["grid"].size == (400, 300)
    assert np.abs(gray(images["grid"]) - upright_scene).mean() < 4


def test_the_orientation_check_tells_a_wrong_turn_apart(tmp_path, corpus, upright_scene):
    """Guard on the tests above: the threshold of 4 really separates right from wrong."""
    images = render(corpus / "orientation__landscape_2.jpg", tmp_path)
    mirrored = images["grid"].transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert np.abs(gray(mirrored) - upright_scene).mean() > 15


@pytest.mark.parametrize("fmt", ["TIFF", "PNG", "WEBP"])
@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_exif_orientation_applies_to_other_formats_too(tmp_path, corpus, upright_scene, fmt, orientation):
    """Pillow's TIFF reader turns images itself while loading: they must not be turned twice."""
    path = with_orientation(corpus, tmp_path, orientation, fmt)
    image = open_upright(path, target=400, max_pixels=LIMIT)
    assert image.size == (400, 300)
    assert np.abs(gray(image) - upright_scene).mean() < 4


def test_xmp_orientation_of_a_png_is_applied(corpus):
    """The PNG has no EXIF; its XMP says tiff:Orientation=3 (rotate 180°)."""
    path = corpus / "orientation__png_xmp_orient3_rgba_icc.png"
    image = open_upright(path, target=1000, max_pixels=LIMIT)
    with Image.open(path) as stored:
        unturned = imaging._to_srgb(stored.convert("RGBA"), stored.info["icc_profile"])
    assert mean_abs_diff(image, unturned.transpose(Image.Transpose.ROTATE_180)) < 1


def test_heif_rotation_is_applied_once(tmp_path, corpus):
    iphone, sony = corpus / "heic__iphone13promax.heic", corpus / "heic__sony_a7cii_rotated_pruned.HIF"
    # iPhone: the irot box and EXIF Orientation=6 both describe the same turn.
    ours_iphone = open_upright(iphone, target=400, max_pixels=LIMIT)
    assert ours_iphone.size == (300, 400)
    # Sony: rotation only in the irot box (6 = right-top).
    ours_sony = open_upright(sony, target=400, max_pixels=LIMIT)
    assert ours_sony.size == (267, 400)
    for source, ours, tagged in ((iphone, ours_iphone, True), (sony, ours_sony, False)):
        theirs = vips_thumbnail(source, tmp_path, 400, to_srgb=tagged)  # the iPhone's is Display P3
        assert theirs.size == ours.size
        assert mean_abs_diff(ours, theirs) < 3


def test_raw_previews_and_demosaics_come_out_upright(corpus):
    # The pruned ProRAW DNG is 4032×3024 with libraw flip 6: portrait.
    image = open_upright(corpus / "raw__iphone12pro_proraw_pruned.dng", target=400, max_pixels=LIMIT)
    assert image.size == (300, 400)


# ---------------------------------------------------------------------------
# Colour
# ---------------------------------------------------------------------------


def icc_of(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.info["icc_profile"]


def test_an_icc_tagged_image_is_converted_as_littlecms_predicts(tmp_path, corpus):
    adobe_rgb = icc_of(corpus / "xmp_iptc__nikon_d1x_reagan_iptc_xmp_icc.jpg")
    assert b"Adobe RGB (1998)" in adobe_rgb
    colour = (40, 160, 90)
    path = tmp_path / "adobe.png"
    Image.new("RGB", (32, 32), colour).save(path, icc_profile=adobe_rgb)

    transform = ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(adobe_rgb)), ImageCms.createProfile("sRGB"), "RGB", "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )  # fmt: skip
    expected = ImageCms.applyTransform(Image.new("RGB", (1, 1), colour), transform).getpixel((0, 0))
    got = open_upright(path, target=400, max_pixels=LIMIT).getpixel((16, 16))
    assert max(abs(a - b) for a, b in zip(got, expected)) <= 1
    assert max(abs(a - b) for a, b in zip(got, colour)) >= 10, "Adobe RGB green is visibly different in sRGB"


@pytest.mark.parametrize(
    "name",
    [
        "bundled_photo__rocket_launch.jpg",  # Adobe RGB (1998)
        "orientation__landscape_3.jpg",  # Apple Generic RGB, gamma 1.8
        "heic__iphone13promax.heic",  # Display P3
        "icc__tiff_rgba_icc.tiff",  # a monitor profile, RGBA
    ],
)
def test_icc_conversion_agrees_with_vips(tmp_path, corpus, name):
    ours = open_upright(corpus / name, target=200, max_pixels=LIMIT)
    theirs = vips_thumbnail(corpus / name, tmp_path, 200, to_srgb=True)
    assert theirs.size == ours.size
    assert mean_abs_diff(ours, theirs) < 2.5
    with Image.open(corpus / name) as image:  # unconverted pixels are measurably further away
        raw = image.convert("RGB")
        raw.thumbnail((200, 200))
        raw = raw.transpose(Image.Transpose.ROTATE_180) if name == "orientation__landscape_3.jpg" else raw
    assert mean_abs_diff(raw, theirs) > mean_abs_diff(ours, theirs) + 1


def test_adobe_cmyk_becomes_sensible_rgb(corpus):
    """An inverted Adobe CMYK JPEG: red lettering on a dark ground, not cyan on white."""
    image = np.asarray(open_upright(corpus / "cmyk__jpeg_cmyk_adobe.jpg", target=400, max_pixels=LIMIT), dtype=int)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    red = (r > 150) & (g < 100) & (b < 100)
    dark = (r < 80) & (g < 80) & (b < 80)
    assert red.mean() > 0.10
    assert dark.mean() > 0.50


def test_cmyk_with_an_embedded_profile_uses_it(tmp_path):
    profile_path = Path("/usr/share/color/icc/ghostscript/default_cmyk.icc")
    if not profile_path.exists():
        pytest.skip("no CMYK ICC profile on this machine (Debian package libgs-common)")
    cmyk_profile = profile_path.read_bytes()
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32), (0, 100, 200, 20)).save(path, "JPEG", quality=100, icc_profile=cmyk_profile)
    with Image.open(path) as stored:
        stored.load()
        transform = ImageCms.buildTransform(
            ImageCms.ImageCmsProfile(io.BytesIO(cmyk_profile)), ImageCms.createProfile("sRGB"), "CMYK", "RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
        )  # fmt: skip
        expected = ImageCms.applyTransform(stored, transform).getpixel((16, 16))
        naive = stored.convert("RGB").getpixel((16, 16))
    got = open_upright(path, target=400, max_pixels=LIMIT).getpixel((16, 16))
    assert max(abs(a - b) for a, b in zip(got, expected)) <= 2
    assert max(abs(a - b) for a, b in zip(got, naive)) > 10


def test_16_bit_png_and_tiff_match_their_8_bit_renders(tmp_path, corpus):
    # The 16-bit PNG is skimage's coffee, as is the bundled 8-bit JPEG.
    png16 = open_upright(corpus / "png__16bit_rgb_coffee.png", target=400, max_pixels=LIMIT)
    jpeg8 = open_upright(corpus / "bundled_photo__coffee.jpg", target=400, max_pixels=LIMIT)
    assert mean_abs_diff(png16, jpeg8) < 4
    tiff16 = open_upright(corpus / "tiff__16bit_rgb.tiff", target=400, max_pixels=LIMIT)
    assert mean_abs_diff(tiff16, vips_thumbnail(corpus / "tiff__16bit_rgb.tiff", tmp_path, 400, to_srgb=False)) < 1


@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", "png"), ("TIFF", "tif")])
def test_16_bit_grey_is_scaled_not_clipped(tmp_path, fmt, suffix):
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (16, 1))
    path = tmp_path / f"ramp.{suffix}"
    Image.fromarray(ramp).save(path, fmt)
    with Image.open(path) as stored:
        assert stored.mode.startswith("I")
    image = np.asarray(open_upright(path, target=400, max_pixels=LIMIT))
    row = image[8, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert abs(row[128] - 128) <= 1, "mid-grey stays mid-grey (Pillow's convert would clip it to white)"
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()


def test_corpus_16_bit_grey_tiff_agrees_with_vips(tmp_path, corpus):
    ours = open_upright(corpus / "tiff__16bit_gray.tif", target=400, max_pixels=LIMIT)
    theirs = vips_thumbnail(corpus / "tiff__16bit_gray.tif", tmp_path, 400, to_srgb=False)
    assert mean_abs_diff(ours, theirs) < 1


def test_transparent_pixels_land_on_the_neutral_background(corpus):
    path = corpus / "png__rgba_alpha.png"
    with Image.open(path) as stored:
        alpha = np.asarray(stored.getchannel("A"))
    image = np.asarray(open_upright(path, target=400, max_pixels=LIMIT))
    assert (alpha == 0).any() and (alpha == 255).any()
    assert (image[alpha == 0] == BACKGROUND).all()


def test_palette_transparency_lands_on_the_neutral_background(corpus):
    path = corpus / "gif__static_transparent.gif"
    with Image.open(path) as stored:
        transparent = np.asarray(stored) == stored.info["transparency"]
    image = np.asarray(open_upright(path, target=400, max_pixels=LIMIT))
    assert transparent.any()
    assert (image[transparent] == BACKGROUND).all()


def test_rgba_avif_is_composited_like_vips(tmp_path, corpus):
    ours = open_upright(corpus / "avif__rgba_alpha.avif", target=400, max_pixels=LIMIT)
    theirs = vips_thumbnail(corpus / "avif__rgba_alpha.avif", tmp_path, 400, to_srgb=False)
    assert mean_abs_diff(ours, theirs) < 1


# ---------------------------------------------------------------------------
# First frame of animations, pages, stereo pairs
# ---------------------------------------------------------------------------


def frame(path: Path, index: int) -> Image.Image:
    """Frame ``index`` as Pillow decodes it, flattened on our background."""
    with Image.open(path) as image:
        image.seek(index)
        rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, BACKGROUND)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


@pytest.mark.parametrize(
    ("name", "other"),
    [
        ("gif__animated_42frames.gif", 21),  # the frame most unlike the first
        ("webp__animated_lossless_42frames.webp", 21),
        ("png__apng_16bit_rgba_animated.png", 1),
        ("mpo__nintendo_3ds_stereo.mpo", 1),  # the right eye
        ("tiff__multipage_3_photos_lzw.tiff", 1),
    ],
)
def test_the_first_frame_is_used(corpus, name, other):
    path = corpus / name
    image = open_upright(path, target=1000, max_pixels=LIMIT)
    assert mean_abs_diff(image, frame(path, 0)) < 0.5
    assert mean_abs_diff(image, frame(path, other)) > 1.5


def test_the_first_page_of_a_multipage_tiff_is_its_first_photo(corpus):
    page = open_upright(corpus / "tiff__multipage_3_photos_lzw.tiff", target=400, max_pixels=LIMIT)
    coffee = open_upright(corpus / "bundled_photo__coffee.jpg", target=400, max_pixels=LIMIT)
    assert mean_abs_diff(page, coffee) < 4


def test_psd_shows_its_composite(corpus):
    psd = open_upright(corpus / "other__photoshop.psd", target=400, max_pixels=LIMIT)
    png = open_upright(corpus / "png__rgb_hopper.png", target=400, max_pixels=LIMIT)
    assert mean_abs_diff(psd, png) < 3


# ---------------------------------------------------------------------------
# RAW
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "raw__iphone12pro_proraw_pruned.dng",
        "raw__canon_cr2_stub.cr2",
        "raw__canon_r6_pruned.CR3",
        "raw__nikon_d70_nef_stub.nef",
        "raw__sony_a7iii_arw_stub.ARW",
    ],
)
def test_raw_files_render_or_say_why_not(tmp_path, corpus, name):
    try:
        images = render(corpus / name, tmp_path)
    except BrokenImage as exc:
        assert exc.reason.startswith("RAW (")
        assert "libraw could not decode it and it has no embedded preview" in exc.reason
    else:
        assert max(images["grid"].size) == 400
        assert max(images["viewer"].size) <= 1600


def test_a_raw_with_a_big_embedded_preview_uses_it(monkeypatch, corpus):
    """With a preview at least as large as the target, libraw never demosaics.

    The corpus RAWs are pruned and carry no preview, so libraw's answer is
    replaced by a JPEG; the file, its size and its flip stay the real DNG's.
    """
    import rawpy

    preview = io.BytesIO()
    Image.new("RGB", (800, 600), (10, 200, 10)).save(preview, "JPEG")

    class Thumb:
        format = rawpy.ThumbFormat.JPEG
        data = preview.getvalue()

    class WithPreview:
        def __init__(self, raw):
            self.sizes = raw.sizes

        def extract_thumb(self):
            return Thumb()

        def postprocess(self, **kwargs):
            raise AssertionError("demosaiced although the preview was big enough")

    real_open = imaging._rawpy_open

    @contextmanager
    def open_with_preview(path):
        with real_open(path) as raw:
            yield WithPreview(raw)

    monkeypatch.setattr(imaging, "_rawpy_open", open_with_preview)
    image = open_upright(corpus / "raw__iphone12pro_proraw_pruned.dng", target=400, max_pixels=LIMIT)
    assert image.size == (300, 400), "the preview is turned by libraw's flip (6)"
    r, g, b = image.getpixel((150, 200))
    assert g > 150 and r < 60 and b < 60


def test_a_tiff_raw_libraw_cannot_read_falls_back_to_its_largest_image(tmp_path, corpus, upright_scene):
    """IFD0 a small preview, IFD1 the full picture, Orientation=6; libraw rejects the file."""
    with Image.open(corpus / "orientation__landscape_1.jpg") as upright:
        stored = upright.transpose(STORED_FROM_UPRIGHT[6])
    path = tmp_path / "DSC_0001.NEF"
    stored.resize((120, 160)).save(path, "TIFF", save_all=True, append_images=[stored], tiffinfo={0x0112: 6})
    image = open_upright(path, target=400, max_pixels=LIMIT)
    assert image.size == (400, 300)
    assert np.abs(gray(image) - upright_scene).mean() < 4
