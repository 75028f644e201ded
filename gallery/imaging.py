"""Decide what a file is, by its content, and open it safely.

Two entry points:

- :func:`identify` runs on every file the scanner meets. It sniffs the magic
  bytes (the extension is only a hint, used to tell TIFF-based RAW from plain
  TIFF), classifies the file and opens the image *header* with Pillow. It never
  decodes pixels.
- :func:`open_upright` decodes an image for display or model input: an sRGB
  ``RGB`` image, upright, first frame, long edge at most ``target``.

Both raise :class:`SkipFile` for things that are not photos we import (videos,
documents, sidecars …) and :class:`BrokenImage` for things that look like
images but cannot be read (truncated, corrupt, too large). The ``reason`` of
either is a short human-readable sentence that the importer records.

Decisions, with the measurements behind them:

- **Pixel limit.** ``max_pixels`` is enforced here, on the header size, before
  anything is decoded. Pillow's global ``Image.MAX_IMAGE_PIXELS`` is left alone
  (other code may change it): its *warning* is ignored because our own check is
  authoritative, and its *error* (at twice its limit) becomes a BrokenImage.
- **Downscaling.** JPEG is decoded with ``draft()`` to the smallest DCT scale
  (1/2, 1/4, 1/8) that is still at least the target size, then resized with
  LANCZOS. On a 12 MP JPEG this is 3.7× faster than a full decode for a 400 px
  target (38 ms vs 149 ms CPU) and 41–48 dB PSNR against full decode +
  LANCZOS, i.e. visually identical (bench/thumbs_draft.py). Drafting to 2× the target (what
  ``Image.thumbnail`` does by default) costs 25 % more for the grid size and
  2× more for the viewer size for no visible gain. Other formats are resized
  with LANCZOS and ``reducing_gap=2`` (a cheap box pre-reduction for big
  factors; ~50 dB PSNR against plain LANCZOS, 2.3× faster for 4:1).
- **Colour.** An embedded ICC profile is converted to sRGB with LittleCMS
  (relative colorimetric + black-point compensation) after downscaling, so the
  transform runs on the small image. Untagged CMYK uses Pillow's conversion
  (Adobe's inverted CMYK is un-inverted by Pillow's JPEG reader); there is no
  CMYK profile we can rely on being installed.
- **Alpha** is composited on a neutral mid-grey, so that dark and light
  artwork both stay visible.
- **Orientation.** EXIF Orientation (or XMP ``tiff:Orientation``, which Pillow
  folds into ``getexif()``) is applied for all eight cases. HEIF is the
  exception: libheif already applies the ``irot``/``imir`` boxes while
  decoding and pillow-heif resets the EXIF tag to 1, so nothing more is done
  (no double rotation). AVIF is read by Pillow's own plugin (pillow-heif 1.x
  no longer reads AVIF), which reports ``irot``/``imir`` as EXIF orientation
  without rotating, so it goes through the normal EXIF path. JPEG XL pixels come
  out of libjxl already oriented, unless the file is a recompressed JPEG that
  is reconstructed (then the JPEG's EXIF applies).
- **PSD** is imported: Pillow reads the flattened composite that Photoshop
  stores ("maximize compatibility"); layers are not counted as frames.
- **JPEG XL**: the only Pillow plugin (pillow-jxl-plugin) decodes the whole
  image when it *opens* the file. So the size is read from the codestream
  header by this module (to enforce the pixel limit before any decode) and
  :func:`identify` returns ``image=None`` for JXL.
- **RAW**: libraw (rawpy). The embedded JPEG preview is used when it is at
  least the target size (a decode of a few ms instead of a demosaic); else a
  half-size demosaic; else the largest image Pillow can read from the TIFF
  structure; else BrokenImage.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Union

import pillow_heif
import pillow_jxl  # noqa: F401  (importing it registers the "JXL" Pillow plugin)
from PIL import Image, ImageCms, UnidentifiedImageError

logger = logging.getLogger(__name__)

# HEIF/HEIC through libheif. AVIF stays with Pillow's own plugin (Pillow >= 11.3
# reads AVIF natively; pillow-heif 1.x dropped its AVIF opener).
pillow_heif.register_heif_opener()

#: What the public functions accept as a file name (bytes for names that are not UTF-8).
FilePath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

#: Colour that transparent pixels are composited on (mid-grey: neutral on
#: light and dark pages, keeps both black and white artwork visible).
BACKGROUND = (128, 128, 128)

#: How many bytes of the file are read to classify it.
SNIFF_BYTES = 4096

# Everything a decoder can raise on hostile input. Each is turned into a
# BrokenImage with a reason; none is swallowed.
_DECODE_ERRORS = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    EOFError,
    SyntaxError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    struct.error,
    ZeroDivisionError,
    OverflowError,
    RuntimeError,  # libheif and libjxl report failures as RuntimeError
    MemoryError,
)
# Errors reading optional metadata (EXIF orientation): the image is still fine.
_METADATA_ERRORS = (
    OSError,
    EOFError,
    SyntaxError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    struct.error,
    UnicodeDecodeError,
)
# OSErrors that mean "the file cannot be read at all", not "bad image data".
_FILE_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


class SkipFile(Exception):
    """Not something we import (video, document, sidecar, unknown format)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BrokenImage(Exception):
    """Looks like an image but cannot be read (truncated, corrupt, too large)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ImageInfo:
    """What :func:`identify` found out about a file, without decoding pixels.

    ``width``/``height`` are the stored pixel size before EXIF orientation is
    applied, with two exceptions that follow the decoders: for HEIF, libheif
    reports the size after its ``irot`` box (and pillow-heif resets the EXIF
    orientation to 1, so the pair stays consistent); for RAW it is libraw's
    output size before its flip, or 0×0 when libraw cannot parse the file.

    ``image`` is the header-only Pillow image (for the metadata reader); the
    caller closes it (or calls :meth:`close`). It is ``None`` for JPEG XL and
    for RAW files Pillow cannot open.
    """

    format: str
    mime_type: str
    width: int
    height: int
    frames: int
    is_raw: bool
    image: Image.Image | None

    def close(self) -> None:
        """Close the header-only image, if any."""
        if self.image is not None:
            self.image.close()


# --------------------------------------------------------------------------
# Classification by content
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """A sniffed file type: our format name and the Pillow plugins to try."""

    format: str
    pillow_formats: tuple[str, ...] = ()
    is_raw: bool = False


_MIME_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/mpo",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
    "JXL": "image/jxl",
    "PSD": "image/vnd.adobe.photoshop",
    "RAW-3FR": "image/x-hasselblad-3fr",
    "RAW-ARW": "image/x-sony-arw",
    "RAW-CR2": "image/x-canon-cr2",
    "RAW-CR3": "image/x-canon-cr3",
    "RAW-CRW": "image/x-canon-crw",
    "RAW-DCR": "image/x-kodak-dcr",
    "RAW-DNG": "image/x-adobe-dng",
    "RAW-ERF": "image/x-epson-erf",
    "RAW-IIQ": "image/x-phaseone-iiq",
    "RAW-KDC": "image/x-kodak-kdc",
    "RAW-MEF": "image/x-mamiya-mef",
    "RAW-MOS": "image/x-leaf-mos",
    "RAW-MRW": "image/x-minolta-mrw",
    "RAW-NEF": "image/x-nikon-nef",
    "RAW-NRW": "image/x-nikon-nrw",
    "RAW-ORF": "image/x-olympus-orf",
    "RAW-PEF": "image/x-pentax-pef",
    "RAW-RAF": "image/x-fuji-raf",
    "RAW-RW2": "image/x-panasonic-rw2",
    "RAW-RWL": "image/x-leica-rwl",
    "RAW-SR2": "image/x-sony-sr2",
    "RAW-SRF": "image/x-sony-srf",
    "RAW-SRW": "image/x-samsung-srw",
    "RAW-X3F": "image/x-sigma-x3f",
}

# Human names of RAW flavours, for reasons ("RAW (Canon CR3): …").
_RAW_NAMES = {
    "3FR": "Hasselblad 3FR",
    "ARW": "Sony ARW",
    "CR2": "Canon CR2",
    "CR3": "Canon CR3",
    "CRW": "Canon CRW",
    "DCR": "Kodak DCR",
    "DNG": "DNG",
    "ERF": "Epson ERF",
    "IIQ": "Phase One IIQ",
    "KDC": "Kodak KDC",
    "MEF": "Mamiya MEF",
    "MOS": "Leaf MOS",
    "MRW": "Minolta MRW",
    "NEF": "Nikon NEF",
    "NRW": "Nikon NRW",
    "ORF": "Olympus ORF",
    "PEF": "Pentax PEF",
    "RAF": "Fujifilm RAF",
    "RW2": "Panasonic RW2",
    "RWL": "Leica RWL",
    "SR2": "Sony SR2",
    "SRF": "Sony SRF",
    "SRW": "Samsung SRW",
    "X3F": "Sigma X3F",
}

# RAW formats that are TIFF files inside: the extension (or a DNG tag, or the
# CR2 signature) is what tells them apart from an ordinary TIFF.
_TIFF_RAW_EXTENSIONS = {
    ".3fr", ".arw", ".cr2", ".dcr", ".dng", ".erf", ".iiq", ".kdc", ".mef",
    ".mos", ".nef", ".nrw", ".pef", ".rwl", ".sr2", ".srf", ".srw",
}  # fmt: skip

_HEIF_BRANDS = {
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs",
    b"mif1", b"msf1", b"mif2", b"MiHE",
}  # fmt: skip
_GENERIC_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}

# ISO-BMFF brands of movies and audio, with the name we report.
_MOVIE_BRANDS = {
    b"qt  ": "QuickTime",
    b"M4V ": "M4V",
    b"M4VH": "M4V",
    b"M4VP": "M4V",
    b"XAVC": "Sony XAVC",
    b"CAEP": "Canon MP4",
    b"NDSC": "MP4",
    b"NDSH": "MP4",
    b"NDSP": "MP4",
    b"MSNV": "MP4",
    b"f4v ": "Flash MP4",
    b"dash": "MPEG-DASH",
    b"avc1": "MP4",
    b"mmp4": "MP4",
}
_AUDIO_BRANDS = {b"M4A ": "M4A", b"M4B ": "M4B", b"M4P ": "M4P"}
# Classic QuickTime files may start with one of these atoms and no 'ftyp'.
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}

# Other non-image files, by magic bytes: (prefix, offset, reason).
_NON_IMAGE_MAGIC = [
    (b"%PDF-", 0, "not an image: PDF document"),
    (b"%!PS", 0, "not an image: PostScript document"),
    (b"\xc5\xd0\xd3\xc6", 0, "not an image: PostScript document (EPS)"),
    (b"PK\x03\x04", 0, "not an image: ZIP archive (or an office document)"),
    (b"\x1f\x8b", 0, "not an image: gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "not an image: 7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "not an image: RAR archive"),
    (b"\x7fELF", 0, "not an image: executable program"),
    (b"MZ", 0, "not an image: Windows executable"),
    (b"SQLite format 3\x00", 0, "not an image: SQLite database"),
    (b"ID3", 0, "not an image: audio file (MP3)"),
    (b"fLaC", 0, "not an image: audio file (FLAC)"),
    (b"OggS", 0, "not an image: Ogg media file"),
    (b"FLV\x01", 0, "video: not yet supported (Flash video)"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", 0, "video: not yet supported (Windows Media)"),
    (b"\x00\x00\x01\xba", 0, "video: not yet supported (MPEG program stream)"),
    (b"\x00\x00\x01\xb3", 0, "video: not yet supported (MPEG video)"),
]

# Formats with a reliable signature that Pillow reads and we accept as they
# are, tried only when none of the checks above matched.
_FALLBACK_PILLOW_FORMATS = ("JPEG2000", "ICO", "PPM", "QOI")

_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"


def _suffix(path: FilePath) -> str:
    """Lower-case extension of ``path`` (str or bytes), e.g. ``".nef"``."""
    name = os.fsdecode(path)
    return os.path.splitext(name)[1].lower()


def _classify_iso_bmff(head: bytes) -> _Kind:
    """Classify an ISO base media file (HEIF, AVIF, CR3, JXL, MP4, MOV …) by its ftyp brands."""
    (box_size,) = struct.unpack(">I", head[:4])
    major = head[8:12]
    end = min(max(box_size, 16), len(head))
    compatible = {head[i : i + 4] for i in range(16, end - 3, 4)}

    if major == b"crx ":
        return _Kind("RAW-CR3", is_raw=True)
    if major == b"jxl ":
        return _Kind("JXL", ("JXL",))
    if major in _AVIF_BRANDS:
        return _Kind("AVIF", ("AVIF",))
    if major in _HEIF_BRANDS:
        # Generic 'mif1' files say what they hold in the compatible brands.
        if major in _GENERIC_HEIF_BRANDS and compatible & _AVIF_BRANDS and not (
            compatible & (_HEIF_BRANDS - _GENERIC_HEIF_BRANDS)
        ):
            return _Kind("AVIF", ("AVIF",))
        return _Kind("HEIF", ("HEIF",))
    if major in _AUDIO_BRANDS:
        raise SkipFile(f"not an image: audio file ({_AUDIO_BRANDS[major]})")
    if major in _MOVIE_BRANDS:
        raise SkipFile(f"video: not yet supported ({_MOVIE_BRANDS[major]})")
    if major.startswith(b"3g"):
        raise SkipFile("video: not yet supported (3GPP)")
    if major.startswith((b"iso", b"mp4", b"mp7")):
        raise SkipFile("video: not yet supported (MP4)")
    # Unknown major brand: fall back on the compatible brands.
    if compatible & _AVIF_BRANDS:
        return _Kind("AVIF", ("AVIF",))
    if compatible & _HEIF_BRANDS:
        return _Kind("HEIF", ("HEIF",))
    if compatible & (set(_MOVIE_BRANDS) | {b"isom", b"iso2", b"mp41", b"mp42"}):
        raise SkipFile("video: not yet supported (MP4)")
    brand = major.decode("latin-1").strip() or "?"
    raise SkipFile(f"not a recognised image format (ISO media file, brand {brand!r})")


def _sniff(head: bytes, suffix: str) -> _Kind | None:
    """Classify a file from its first bytes.

    Returns the kind of image, ``None`` when nothing matched (the caller then
    tries Pillow's remaining plugins and the text checks), or raises SkipFile
    for known non-images.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return _Kind("JPEG", ("JPEG",))  # Pillow reports multi-picture files as MPO
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _Kind("PNG", ("PNG",))
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _Kind("GIF", ("GIF",))
    if head[:4] == b"RIFF":
        riff_type = head[8:12]
        if riff_type == b"WEBP":
            return _Kind("WEBP", ("WEBP",))
        if riff_type == b"AVI ":
            raise SkipFile("video: not yet supported (AVI)")
        if riff_type == b"WAVE":
            raise SkipFile("not an image: audio file (WAV)")
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        if head[8:10] == b"CR":
            return _Kind("RAW-CR2", is_raw=True)
        if suffix in _TIFF_RAW_EXTENSIONS:
            return _Kind("RAW-" + suffix[1:].upper(), is_raw=True)
        return _Kind("TIFF", ("TIFF",))  # a DNG named .tif is caught after opening
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return _Kind("RAW-ORF", is_raw=True)
    if head[:4] == b"IIU\x00":
        return _Kind("RAW-RW2", is_raw=True)
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return _Kind("RAW-RAF", is_raw=True)
    if head[:2] == b"II" and head[6:14] == b"HEAPCCDR":
        return _Kind("RAW-CRW", is_raw=True)
    if head[:4] == b"FOVb":
        return _Kind("RAW-X3F", is_raw=True)
    if head[:4] == b"\x00MRM":
        return _Kind("RAW-MRW", is_raw=True)
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _classify_iso_bmff(head)
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS and struct.unpack(">I", head[:4])[0] >= 8:
        raise SkipFile("video: not yet supported (QuickTime)")
    if head.startswith(b"\xff\x0a") or head.startswith(_JXL_CONTAINER):
        return _Kind("JXL", ("JXL",))
    if head.startswith(b"8BPS"):
        return _Kind("PSD", ("PSD",))
    if head[:2] == b"BM" and len(head) >= 18 and head[14:18] in (
        b"\x0c\x00\x00\x00", b"\x28\x00\x00\x00", b"\x34\x00\x00\x00",
        b"\x38\x00\x00\x00", b"\x40\x00\x00\x00", b"\x6c\x00\x00\x00", b"\x7c\x00\x00\x00",
    ):  # fmt: skip  (the DIB header sizes a real BMP can have)
        return _Kind("BMP", ("BMP",))
    if head[:4] == b"\x1a\x45\xdf\xa3":
        container = "WebM" if b"webm" in head[:64] else "Matroska"
        raise SkipFile(f"video: not yet supported ({container})")
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        raise SkipFile("video: not yet supported (MPEG transport stream)")
    for magic, offset, reason in _NON_IMAGE_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            raise SkipFile(reason)
    if b"%PDF-" in head[:1024]:
        raise SkipFile("not an image: PDF document")
    return None


def _decode_text(head: bytes) -> str | None:
    """The first bytes as text, or None when they look binary."""
    if head.startswith(codecs.BOM_UTF8):
        encoding, data = "utf-8", head[3:]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, data = "utf-16", head
    else:
        encoding, data = "utf-8", head
    try:
        # Incremental: a multi-byte character cut at the end is not an error.
        text = codecs.getincrementaldecoder(encoding)().decode(data, final=False)
    except UnicodeDecodeError:
        # Legacy 8-bit text: no control characters besides whitespace.
        text = head.decode("latin-1")
    if not text:
        return None
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f\v")
    if "\x00" in text or controls > len(text) // 100:
        return None
    return text


def _describe_text(head: bytes) -> str | None:
    """A SkipFile reason for text-like files (XMP, HTML, SVG, XML, text)."""
    text = _decode_text(head)
    if text is None:
        return None
    lower = text.lstrip().lower()
    if "<x:xmpmeta" in lower or lower.startswith("<?xpacket") or "<rdf:rdf" in lower:
        return "XMP sidecar: read together with its photo"
    if lower.startswith(("<!doctype html", "<html")) or re.search(r"<(head|body)[\s>]", lower):
        return "not an image: HTML document"
    if "<svg" in lower[:2048]:
        return "unsupported image format: SVG (vector graphics)"
    if lower.startswith("<?xml"):
        return "not an image: XML document"
    return "not an image: text file"


# --------------------------------------------------------------------------
# Opening with Pillow, pixel limit, reasons
# --------------------------------------------------------------------------


def _read_head(path: FilePath) -> tuple[bytes, int]:
    """First bytes of the file and its size. OSError if it cannot be read."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return f.read(SNIFF_BYTES), size


def _too_large(pixels: int, limit: int) -> BrokenImage:
    return BrokenImage(f"image too large: {pixels:,} pixels (limit {limit:,})")


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    """Refuse images over the pixel limit (and degenerate 0-pixel ones)."""
    width, height = size
    if width <= 0 or height <= 0:
        raise BrokenImage(f"image has no pixels ({width}×{height})")
    if width * height > max_pixels:
        raise _too_large(width * height, max_pixels)


def _bomb_reason(exc: Image.DecompressionBombError, max_pixels: int) -> BrokenImage:
    """Turn Pillow's decompression-bomb error into our 'too large' reason."""
    match = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", str(exc))
    if not match:
        return BrokenImage(f"image too large (limit {max_pixels:,} pixels)")
    pixels, pillow_limit = int(match[1]), int(match[2])
    if pixels > max_pixels:
        return _too_large(pixels, max_pixels)
    # Within our limit but over Pillow's hard limit (twice Image.MAX_IMAGE_PIXELS).
    return BrokenImage(f"image too large: {pixels:,} pixels (Pillow's limit {pillow_limit:,})")


def _decode_reason(label: str, exc: BaseException) -> str:
    """A human-readable reason for a decoder failure."""
    message = str(exc).strip()
    lowered = message.lower()
    if isinstance(exc, EOFError) or any(
        hint in lowered
        for hint in ("truncated", "end of file", "broken data stream", "premature end", "not enough data")
    ):
        return "truncated image data (file ends early)"
    if isinstance(exc, MemoryError):
        return f"{label}: not enough memory to decode the image"
    return f"{label}: corrupt image data ({message or type(exc).__name__})"


@contextmanager
def _quiet_pillow(label: str) -> Iterator[None]:
    """Collect Pillow's warnings (malformed MPO, corrupt EXIF …) and log them.

    DecompressionBombWarning is among them: our own pixel limit decides.
    (``catch_warnings`` swaps process-wide state: fine in single-threaded
    workers; in threads a warning may at worst be printed instead of logged.)
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                logger.debug("%s: %s", label, warning.message)


def _open_pillow(source: FilePath | IO[bytes], formats: tuple[str, ...], label: str, max_pixels: int) -> Image.Image:
    """Open an image header with the given Pillow plugins and check its size."""
    try:
        with _quiet_pillow(label):
            image = Image.open(source, formats=formats)
    except Image.DecompressionBombError as exc:
        raise _bomb_reason(exc, max_pixels) from exc
    except UnidentifiedImageError as exc:
        raise BrokenImage(f"{label}: corrupt header, the image cannot be read") from exc
    except _FILE_ERRORS:
        raise
    except _DECODE_ERRORS as exc:
        raise BrokenImage(_decode_reason(label, exc)) from exc
    try:
        _check_pixels(image.size, max_pixels)
    except BrokenImage:
        image.close()
        raise
    return image


def _load(image: Image.Image, label: str, max_pixels: int) -> None:
    """Decode the pixels of an opened image, mapping failures to BrokenImage."""
    try:
        with _quiet_pillow(label):
            image.load()
    except Image.DecompressionBombError as exc:
        raise _bomb_reason(exc, max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise BrokenImage(_decode_reason(label, exc)) from exc
    _check_pixels(image.size, max_pixels)  # a frame can be larger than the header said


def _frame_count(image: Image.Image, kind: _Kind) -> int:
    """Frames or pages; layers of a PSD are not frames (we show the composite)."""
    if kind.format == "PSD":
        return 1
    # Counting seeks through the frames, and Pillow's TIFF reader keeps tags of
    # later pages (an ICC profile …) in ``info`` after seeking back: restore it.
    info = dict(image.info)
    try:
        with _quiet_pillow(kind.format):
            return max(1, int(getattr(image, "n_frames", 1)))
    except _DECODE_ERRORS as exc:
        # A damaged later frame leaves the first one usable.
        logger.debug("%s: could not count frames: %s", kind.format, exc)
        return 1
    finally:
        image.info = info


def _mime_type(format_name: str, image: Image.Image | None) -> str:
    if image is not None:
        custom = getattr(image, "custom_mimetype", None)  # pillow-heif: image/heic vs image/heif
        if custom:
            return custom
    if format_name in _MIME_TYPES:
        return _MIME_TYPES[format_name]
    if image is not None and image.get_format_mimetype():
        return image.get_format_mimetype()
    return "application/octet-stream"


def _is_dng(image: Image.Image) -> bool:
    """A TIFF whose IFD0 carries DNGVersion is a DNG, whatever its name."""
    tags = getattr(image, "tag_v2", None)
    return tags is not None and 50706 in tags


def _open_fallback_format(path: FilePath, max_pixels: int) -> tuple[_Kind, Image.Image] | None:
    """Formats Pillow knows by a reliable signature (JPEG 2000, ICO …), or None."""
    try:
        image = _open_pillow(path, _FALLBACK_PILLOW_FORMATS, "image", max_pixels)
    except BrokenImage as exc:
        if isinstance(exc.__cause__, UnidentifiedImageError):
            return None  # none of them recognises the file
        raise
    return _Kind(image.format, (image.format,)), image


def _classify(path: FilePath, max_pixels: int) -> tuple[_Kind, Image.Image | None]:
    """Sniff a file and open its header.

    Returns the kind and, for formats decoded through Pillow, the opened (not
    loaded) image. RAW and JXL come back with ``None``: they are opened by
    their own code paths.
    """
    head, size = _read_head(path)
    if size == 0:
        raise SkipFile("empty file (0 bytes)")
    kind = _sniff(head, _suffix(path))

    if kind is None:
        found = _open_fallback_format(path, max_pixels)
        if found is not None:
            return found
        raise SkipFile(_describe_text(head) or "not a recognised image format")

    if kind.is_raw:
        return kind, None
    if kind.format == "JXL":
        with open(path, "rb") as f:
            _check_pixels(_jxl_size(f), max_pixels)
        return kind, None

    if kind.format == "PSD":
        try:
            image = _open_pillow(path, kind.pillow_formats, "Photoshop PSD", max_pixels)
        except BrokenImage as exc:
            if exc.reason.startswith("image too large"):
                raise
            # Pillow reads 8-bit RGB/CMYK/grey PSDs; others (16-bit, Lab …) are unsupported.
            raise SkipFile("unsupported image format: Photoshop PSD (a variant Pillow cannot read)") from exc
        return kind, image

    image = _open_pillow(path, kind.pillow_formats, kind.format, max_pixels)
    if kind.format == "TIFF" and _is_dng(image):
        image.close()
        return _Kind("RAW-DNG", is_raw=True), None
    if image.format == "MPO":
        kind = _Kind("MPO", kind.pillow_formats)
    return kind, image


# --------------------------------------------------------------------------
# JPEG XL header (the plugin decodes everything on open; we read the size first)
# --------------------------------------------------------------------------


class _BitReader:
    """Little-endian bit reader, as JPEG XL headers are written."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "little")
        self._available = len(data) * 8
        self._position = 0

    def read(self, bits: int) -> int:
        if self._position + bits > self._available:
            raise BrokenImage("JXL: truncated image data (file ends early)")
        value = (self._value >> self._position) & ((1 << bits) - 1)
        self._position += bits
        return value

    def u32(self) -> int:
        """The U32(1 + u(9), 1 + u(13), 1 + u(18), 1 + u(30)) of a SizeHeader."""
        bits = (9, 13, 18, 30)[self.read(2)]
        return 1 + self.read(bits)


_JXL_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


def _jxl_codestream_start(f: IO[bytes]) -> bytes:
    """The first bytes of a JPEG XL codestream, bare or in its ISO-BMFF container."""
    f.seek(0)
    signature = f.read(12)
    if signature[:2] == b"\xff\x0a":
        return signature + f.read(52)
    if signature != _JXL_CONTAINER:
        raise BrokenImage("JXL: corrupt header, the image cannot be read")
    position, collected = 12, b""
    for _ in range(1000):  # boxes before the codestream: ftyp, Exif, xml, jbrd …
        f.seek(position)
        header = f.read(8)
        if len(header) < 8:
            break
        box_size, box_type = struct.unpack(">I4s", header)
        header_size = 8
        if box_size == 1:
            extended = f.read(8)
            if len(extended) < 8:
                break
            (box_size,) = struct.unpack(">Q", extended)
            header_size = 16
        if box_type == b"jxlc":
            return f.read(64)
        if box_type == b"jxlp":  # partial codestream: a 4-byte index, then data
            f.read(4)
            limit = 64 if box_size == 0 else min(64, box_size - header_size - 4)
            collected += f.read(max(0, limit))
            if len(collected) >= 64:
                return collected
        if box_size == 0:  # box runs to the end of the file
            break
        if box_size < header_size:
            raise BrokenImage("JXL: corrupt container (bad box size)")
        position += box_size
    if collected:
        return collected
    raise BrokenImage("JXL: no image data found in the container")


def _jxl_size(f: IO[bytes]) -> tuple[int, int]:
    """Stored width and height from a JPEG XL SizeHeader (ISO/IEC 18181-1 §D.2)."""
    data = _jxl_codestream_start(f)
    if data[:2] != b"\xff\x0a":
        raise BrokenImage("JXL: corrupt header, the image cannot be read")
    bits = _BitReader(data[2:])
    small = bits.read(1)
    height = (bits.read(5) + 1) * 8 if small else bits.u32()
    ratio = bits.read(3)
    if ratio:
        numerator, denominator = _JXL_RATIOS[ratio]
        width = height * numerator // denominator
    else:
        width = (bits.read(5) + 1) * 8 if small else bits.u32()
    return width, height


# --------------------------------------------------------------------------
# identify
# --------------------------------------------------------------------------


def identify(path: FilePath, *, max_pixels: int) -> ImageInfo:
    """Classify a file by content and open its header, without decoding pixels.

    The extension is never trusted (a JPEG named ``.png`` is a JPEG); it only
    separates TIFF-based RAW files (NEF, ARW, DNG …) from ordinary TIFFs.

    Raises :class:`SkipFile` for non-images and unsupported formats,
    :class:`BrokenImage` for corrupt or oversized images, and ``OSError`` only
    when the file cannot be read at all. The returned ``image`` (if any) is
    open: the caller closes it.
    """
    kind, image = _classify(path, max_pixels)
    if kind.is_raw:
        return _identify_raw(path, kind, max_pixels)
    if kind.format == "JXL":
        with open(path, "rb") as f:
            width, height = _jxl_size(f)
        return ImageInfo("JXL", _MIME_TYPES["JXL"], width, height, 1, False, None)
    assert image is not None
    return ImageInfo(
        format=kind.format,
        mime_type=_mime_type(kind.format, image),
        width=image.width,
        height=image.height,
        frames=_frame_count(image, kind),
        is_raw=False,
        image=image,
    )


# --------------------------------------------------------------------------
# RAW
# --------------------------------------------------------------------------


def _raw_label(kind: _Kind) -> str:
    flavour = kind.format.removeprefix("RAW-")
    return f"RAW ({_RAW_NAMES.get(flavour, flavour)})"


@contextmanager
def _rawpy_open(path: FilePath):  # -> Iterator[rawpy.RawPy]
    """rawpy.imread that copes with bytes and non-UTF-8 paths.

    libraw gets a path it can open itself when the name is valid UTF-8;
    otherwise the file is handed over as a file object (read into memory).
    """
    import rawpy  # noqa: PLC0415  (only RAW files need libraw)

    name = os.fsdecode(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        with open(path, "rb") as f, rawpy.imread(f) as raw:
            yield raw
    else:
        with rawpy.imread(name) as raw:
            yield raw


def _identify_raw(path: FilePath, kind: _Kind, max_pixels: int) -> ImageInfo:
    """RAW: size from libraw (0×0 if it cannot parse the file), header image from Pillow if it can."""
    import rawpy  # noqa: PLC0415

    width = height = 0
    try:
        with _rawpy_open(path) as raw:
            width, height = raw.sizes.width, raw.sizes.height
    except rawpy.LibRawError as exc:
        logger.debug("%s: libraw cannot parse %r: %s", kind.format, path, exc)
    if width and height and width * height > max_pixels:
        raise _too_large(width * height, max_pixels)

    image = None
    if kind.format != "RAW-CR3":  # everything else but CR3/RAF/… is TIFF-shaped
        try:
            image = _open_pillow(path, ("TIFF",), kind.format, max_pixels)
        except BrokenImage as exc:
            logger.debug("%s: Pillow cannot open the TIFF structure: %s", kind.format, exc.reason)
    return ImageInfo(kind.format, _mime_type(kind.format, None), width, height, 1, True, image)


# libraw's flip (0, 3, 5, 6) as an EXIF orientation.
_LIBRAW_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


def _open_raw(path: FilePath, kind: _Kind, target: int, max_pixels: int) -> Image.Image:
    """Decode a RAW file: big enough embedded preview, else half-size demosaic, else TIFF preview."""
    import numpy as np  # noqa: PLC0415
    import rawpy  # noqa: PLC0415

    label = _raw_label(kind)
    try:
        with _rawpy_open(path) as raw:
            sizes = raw.sizes
            _check_pixels((sizes.width, sizes.height), max_pixels)
            # The preview is stored as the sensor saw it; libraw's flip says how to turn it.
            orientation = _LIBRAW_FLIP_TO_ORIENTATION.get(sizes.flip, 1)
            preview = _libraw_preview(raw, label, max_pixels)
            big_enough = min(target, max(sizes.width, sizes.height))
            if preview is not None and max(preview.size) >= big_enough:
                try:
                    return _decode(preview, target=target, orientation=orientation, label=label, max_pixels=max_pixels)
                except BrokenImage as exc:
                    logger.info("%s: embedded preview of %r unusable: %s", label, path, exc.reason)
                    preview = None
            try:
                # Demosaic 2×2 blocks into one pixel; libraw applies its flip and outputs 8-bit sRGB.
                rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
            except (rawpy.LibRawError, MemoryError) as exc:
                logger.info("%s: libraw could not demosaic %r: %s", label, path, exc)
            else:
                if preview is not None:
                    preview.close()
                image = Image.fromarray(np.ascontiguousarray(rgb))
                return _decode(image, target=target, orientation=1, label=label, max_pixels=max_pixels)
            if preview is not None:  # smaller than asked for, but better than nothing
                return _decode(preview, target=target, orientation=orientation, label=label, max_pixels=max_pixels)
    except rawpy.LibRawError as exc:
        logger.info("%s: libraw cannot read %r: %s", label, path, exc)

    found = _largest_tiff_preview(path, kind, max_pixels)
    if found is not None:
        image, orientation = found
        return _decode(image, target=target, orientation=orientation, label=label, max_pixels=max_pixels)
    raise BrokenImage(f"{label}: libraw could not decode it and it has no embedded preview")


def _libraw_preview(raw, label: str, max_pixels: int) -> Image.Image | None:
    """The embedded preview libraw finds (a JPEG or a bitmap), opened but not decoded."""
    import numpy as np  # noqa: PLC0415
    import rawpy  # noqa: PLC0415

    try:
        thumb = raw.extract_thumb()
    except rawpy.LibRawError as exc:
        logger.debug("%s: no embedded preview: %s", label, exc)
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            return _open_pillow(io.BytesIO(thumb.data), ("JPEG",), f"{label} preview", max_pixels)
        except BrokenImage as exc:
            logger.debug("%s: embedded preview unreadable: %s", label, exc.reason)
            return None
    if thumb.format == rawpy.ThumbFormat.BITMAP:
        return Image.fromarray(np.ascontiguousarray(thumb.data))
    return None


def _largest_tiff_preview(path: FilePath, kind: _Kind, max_pixels: int) -> tuple[Image.Image, int] | None:
    """The largest image Pillow can decode from a TIFF-shaped RAW's IFD chain, and its orientation."""
    if kind.format == "RAW-CR3":
        return None
    try:
        container = _open_pillow(path, ("TIFF",), kind.format, max_pixels)
    except BrokenImage as exc:
        logger.debug("%s: no readable TIFF structure: %s", kind.format, exc.reason)
        return None
    with container:
        candidates = []
        for index in range(_frame_count(container, kind)):
            try:
                container.seek(index)
            except _DECODE_ERRORS:
                break
            width, height = container.size
            if 0 < width * height <= max_pixels:
                candidates.append((width * height, index))
        for _, index in sorted(candidates, reverse=True):
            try:
                with _quiet_pillow(kind.format):
                    container.seek(index)
                    container.load()
                    frame = container.copy()
            except _DECODE_ERRORS as exc:
                logger.debug("%s: IFD %d not decodable: %s", kind.format, index, exc)
                continue
            # After loading, as in _decode: Pillow may have turned the frame already.
            return frame, _exif_orientation(container)
    return None


# --------------------------------------------------------------------------
# Decoding: draft, mode, resize, colour, orientation
# --------------------------------------------------------------------------

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _fit(size: tuple[int, int], target: int) -> tuple[int, int]:
    """Size with the long edge at most ``target``, aspect kept, never upscaled."""
    width, height = size
    long_edge = max(width, height)
    if long_edge <= target:
        return size
    scale = target / long_edge
    return max(1, round(width * scale)), max(1, round(height * scale))


def _exif_orientation(image: Image.Image) -> int:
    """EXIF (or XMP tiff:Orientation) value 1–8; 1 when absent or unreadable."""
    try:
        with _quiet_pillow("EXIF"):
            value = image.getexif().get(0x0112, 1)
    except _METADATA_ERRORS as exc:
        logger.debug("unreadable EXIF orientation, assuming upright: %s", exc)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _orientation_for(image: Image.Image) -> int:
    """How the decoded pixels still have to be turned to be upright."""
    if image.format == "HEIF":
        return 1  # libheif applied irot/imir; pillow-heif reset EXIF orientation to 1
    if image.format == "JXL" and not getattr(image, "jpeg", False):
        return 1  # libjxl applied the codestream orientation
    return _exif_orientation(image)


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    """Scale 16/32-bit and float greyscale to 8-bit L (Pillow's convert clips instead)."""
    import numpy as np  # noqa: PLC0415

    values = np.asarray(image)
    if image.mode == "F":
        peak = float(np.nanmax(values)) if values.size else 0.0
        scale = 255.0 if peak <= 1.0 else 255.0 / 65535.0 if peak > 255.0 else 1.0
        scaled = np.nan_to_num(values.astype(np.float64) * scale)
    elif image.mode.startswith("I;16") or (values.size and values.max() > 255):
        scaled = values.astype(np.float64) / 257.0  # 16-bit range
    else:
        scaled = values.astype(np.float64)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))  # 2-D uint8 → "L"


def _working_mode(image: Image.Image) -> Image.Image:
    """Convert to L, LA, RGB, RGBA or CMYK: modes that resize and colour-manage well."""
    mode = image.mode
    has_transparency = "transparency" in image.info
    if mode in ("RGB", "L") and has_transparency:
        return image.convert("RGBA" if mode == "RGB" else "LA")
    if mode in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return image
    if mode == "P":
        has_alpha = has_transparency or (image.palette is not None and image.palette.mode == "RGBA")
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode == "PA":
        return image.convert("RGBA")
    if mode in ("RGBa", "RGBX"):
        return image.convert("RGBA" if mode == "RGBa" else "RGB")
    if mode == "La":
        return image.convert("LA")
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I") or mode == "F":
        return _sixteen_bit_to_l(image)
    if mode == "LAB":
        transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"), _srgb(), "LAB", "RGB")
        return ImageCms.applyTransform(image, transform)
    return image.convert("RGB")  # YCbCr, HSV …


@lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


# ICC colour space signatures that match each working mode.
_PROFILE_SPACES = {"RGB": "RGB ", "L": "GRAY", "CMYK": "CMYK"}


@lru_cache(maxsize=16)
def _icc_transform(profile_bytes: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A cached transform from an embedded profile to sRGB (None if unusable).

    A library holds few distinct profiles (sRGB, Adobe RGB, Display P3, a
    camera's own) and building a transform costs milliseconds, so transforms
    are cached by the profile's bytes.
    """
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(profile_bytes))
    except (OSError, ImageCms.PyCMSError) as exc:
        logger.info("ignoring unreadable ICC profile: %s", exc)
        return None
    space = profile.profile.xcolor_space
    if space != _PROFILE_SPACES[mode]:
        logger.info("ignoring ICC profile for colour space %r on a %s image", space, mode)
        return None
    try:
        return ImageCms.buildTransform(
            profile,
            _srgb(),
            mode,
            "RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            # NOCACHE: LittleCMS's one-pixel cache makes a shared transform unsafe across threads.
            flags=ImageCms.Flags.BLACKPOINTCOMPENSATION | ImageCms.Flags.NOCACHE,
        )
    except ImageCms.PyCMSError as exc:
        logger.info("ignoring ICC profile that LittleCMS cannot use: %s", exc)
        return None


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Working-mode image → sRGB RGB: ICC conversion, alpha on the neutral background."""
    alpha = None
    if image.mode in ("RGBA", "LA"):
        alpha = image.getchannel("A")
        image = image.convert(image.mode[:-1])

    transform = None
    if icc_profile:
        transform = _icc_transform(bytes(icc_profile), image.mode)
    if transform is not None:
        try:
            rgb = ImageCms.applyTransform(image, transform)
        except ImageCms.PyCMSError as exc:
            logger.info("ICC conversion failed, using the pixels as they are: %s", exc)
            rgb = image.convert("RGB")
    else:
        rgb = image.convert("RGB")

    if alpha is not None:
        background = Image.new("RGB", rgb.size, BACKGROUND)
        background.paste(rgb, mask=alpha)
        rgb = background
    return rgb


def _decode(
    image: Image.Image, *, target: int, orientation: int | None, label: str, max_pixels: int
) -> Image.Image:
    """Opened image → upright sRGB RGB image with long edge <= target. Closes ``image``.

    ``orientation`` overrides what the file says (RAW previews take libraw's
    flip); ``None`` reads it from the image.
    """
    with image:
        final_size = _fit(image.size, target)
        if final_size != image.size:
            # JPEG: decode at 1/2, 1/4 or 1/8 scale, still >= final_size.
            # HEIF: pick an embedded thumbnail >= final_size if there is one.
            image.draft(image.mode, final_size)
        # Read before loading: some readers rewrite info while loading.
        icc_profile = image.info.get("icc_profile")
        drafted_size = image.size
        _load(image, label, max_pixels)
        if image.size != drafted_size:
            final_size = _fit(image.size, target)  # a decoder changed its mind about the size
        if orientation is None:
            # Read after loading: Pillow's TIFF reader turns the pixels by the
            # Orientation tag itself and drops the tag while it loads.
            orientation = _orientation_for(image)
        icc_profile = icc_profile or image.info.get("icc_profile")

        try:
            working = _working_mode(image)
            if working.size != final_size:
                working = working.resize(final_size, Image.Resampling.LANCZOS, reducing_gap=2.0)
            upright = _to_srgb(working, icc_profile)
        except (ValueError, OSError, MemoryError, ImageCms.PyCMSError) as exc:
            raise BrokenImage(f"{label}: cannot convert its {image.mode} pixels to RGB ({exc})") from exc
    method = _TRANSPOSE.get(orientation)
    return upright.transpose(method) if method is not None else upright


def open_upright(path: FilePath, *, target: int, max_pixels: int) -> Image.Image:
    """Decode an image for display or model input.

    Returns an ``RGB`` image in sRGB, upright (all eight EXIF orientations;
    HEIF rotation as libheif applies it), first frame/page only, with the long
    edge at most ``target`` (never upscaled). RAW files go through libraw.

    Raises :class:`SkipFile` for non-images, :class:`BrokenImage` for images
    that cannot be decoded (with a reason such as "truncated image data (file
    ends early)"), ``OSError`` only if the file cannot be read at all.
    """
    if target < 1:
        raise ValueError(f"target must be a positive pixel size, not {target}")
    kind, image = _classify(path, max_pixels)
    if kind.is_raw:
        return _open_raw(path, kind, target, max_pixels)
    if kind.format == "JXL":
        try:  # the plugin decodes while opening; the size was checked in _classify
            image = _open_pillow(path, ("JXL",), "JXL", max_pixels)
        except BrokenImage as exc:
            # libjxl's own message is a generic "please build libjxl in debug mode".
            raise BrokenImage("JXL: corrupt or truncated image data (libjxl could not decode it)") from exc
    assert image is not None
    return _decode(image, target=target, orientation=None, label=kind.format, max_pixels=max_pixels)
