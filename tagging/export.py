"""Giving the metadata back to the photos: XMP sidecars (default) or embedded XMP/IPTC/EXIF (opt-in), via pyexiv2.

What is written for a photo (:func:`metadata_for`): its accepted tags as
``dc:subject`` (flat, every level), ``lr:hierarchicalSubject`` (``|``) and
``digiKam:TagsList`` (``/``); its caption (the owner's text wins over the
model's) as ``dc:description``; its title or short caption as ``dc:title``;
its rating as ``xmp:Rating``; its named faces as MWG face regions
(``mwg-rs:Regions``: centre-based normalised areas of the stored pixels, with
the stored size as ``AppliedToDimensions``, the convention ``people.regions``
reads), keeping the regions already there for faces Shoebox does not know;
and, in the ``shoebox`` namespace, which of those came from a model, which
model and prompt version. Embedded mode also
writes IPTC ``Keywords`` (64 bytes each, UTF-8 declared) and
``Caption-Abstract``, and EXIF ``ImageDescription``, where the format has them.

Files are never half-written: every write goes to a temporary file in the
same folder, is checked, and is renamed into place. Embedded writes also
check that the decoded pixels did not change, and record the file's new
content hash so the next rescan sees the same photo. A file that cannot be
written (read-only storage, permissions, a full disk, a format exiv2 cannot
write) gives a per-file error; nothing else changes.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

SHOEBOX_NS = "https://shoebox.local/ns/1.0/"
SHOEBOX_PREFIX = "shoebox"
IPTC_KEYWORD_BYTES = 64
IPTC_TITLE_BYTES = 64
IPTC_CAPTION_BYTES = 2000
EMPTY_PACKET = (  # what exiv2 fills in: a sidecar starts as an empty XMP packet
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>\n'
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>'
)
# pyexiv2 2.16 writes every new XMP array as an rdf:Seq; the standard makes these unordered Bags.
BAGS = ("dc:subject", "lr:hierarchicalSubject", "shoebox:AIFields")


class ExportError(RuntimeError):
    """This file could not be written (the message says why, for the owner)."""


@dataclass
class PhotoMetadata:
    """What Shoebox says about one photo, ready to write."""

    keywords: list[str] = field(default_factory=list)  # flat: every level of every accepted tag
    hierarchical: list[str] = field(default_factory=list)  # "Places|Italy|Rome"
    tags_list: list[str] = field(default_factory=list)  # "Places/Italy/Rome"
    title: str = ""
    description: str = ""
    rating: int | None = None
    ai_fields: list[str] = field(default_factory=list)  # which of the fields a model wrote
    ai_model: str = ""
    ai_prompt_version: str = ""
    # Named faces: {"name", "box": [x, y, w, h]} top-left fractions of the *stored* pixels.
    regions: list[dict] = field(default_factory=list)
    region_size: tuple[int, int] | None = None  # the stored pixels' width and height
    region_orientation: int = 1  # the file's EXIF orientation (how the stored pixels are turned upright)


@dataclass
class FileResult:
    path: str
    mode: str  # "sidecar" or "embedded"
    changes: dict = field(default_factory=dict)  # field → [before, after]
    written: bool = False
    error: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


# -- what to write ---------------------------------------------------------------------


def metadata_for(photo) -> PhotoMetadata:
    """The accepted tags, the caption shown (owner's first), title, rating and provenance of ``photo``."""
    from tagging.models import Caption, OwnerCaption, PhotoTag

    paths = list(PhotoTag.objects.filter(photo=photo, state=PhotoTag.State.ACCEPTED)
                 .order_by("tag__path").values_list("tag__path", flat=True))
    keywords = list(dict.fromkeys(part for path in paths for part in path.split("/")))
    owner = OwnerCaption.objects.filter(photo=photo).first()
    model = Caption.objects.filter(photo=photo).shown_first().first()
    meta = PhotoMetadata(keywords=keywords, hierarchical=[p.replace("/", "|") for p in paths], tags_list=paths,
                         rating=photo.rating)
    ai_tags = PhotoTag.objects.filter(photo=photo, state=PhotoTag.State.ACCEPTED).exclude(
        source__in=[PhotoTag.Source.FILE, PhotoTag.Source.OWNER]).exists()
    if owner is not None:
        meta.description = owner.caption
    elif model is not None and (model.description or model.caption):
        meta.description = model.description or model.caption
        meta.ai_fields.append("dc:description")
    if photo.title:
        meta.title = photo.title
    elif owner is not None:
        meta.title = owner.caption
    elif model is not None and model.caption:
        meta.title = model.caption
        meta.ai_fields.append("dc:title")
    if ai_tags:
        meta.ai_fields.append("dc:subject")
    if model is not None and meta.ai_fields:
        meta.ai_model, meta.ai_prompt_version = f"{model.backend}:{model.model}", model.prompt_version
    meta.regions, meta.region_size = named_regions(photo)
    if meta.regions:
        from people.regions import file_orientation

        meta.region_orientation = file_orientation(photo)
    return meta


def named_regions(photo) -> tuple[list[dict], tuple[int, int] | None]:
    """The photo's faces of named, shown persons as regions of its stored pixels, and that size."""
    from people import regions
    from people.models import Face

    orientation = regions.file_orientation(photo)
    faces = (Face.objects.filter(photo=photo, person__isnull=False, person__hidden=False)
             .exclude(person__name="").select_related("person").order_by("x", "y", "pk"))
    out = []
    for face in faces:
        box = regions.to_stored(face.box, orientation)
        if any(same["name"] == face.person.name and _overlaps(same["box"], box) for same in out):
            continue  # a detected face and the file's region of the same person: one region
        out.append({"name": face.person.name, "box": [round(v, 6) for v in box]})
    return out, regions.stored_size(photo)


def _overlaps(a, b) -> bool:
    from people.geometry import same_face

    return same_face(tuple(a), tuple(b))


# -- where to write --------------------------------------------------------------------


def sidecar_path(original: Path, *, naming: str = "darktable", root: Path | None = None,
                 out: Path | None = None) -> Path:
    """``IMG.jpg.xmp`` (darktable, digiKam) or ``IMG.xmp`` (Lightroom); beside the original, or under ``out``
    mirroring the library (``root``) for libraries on read-only storage."""
    name = original.name + ".xmp" if naming == "darktable" else original.stem + ".xmp"
    if out is None:
        return original.with_name(name)
    if root is None:
        raise ValueError("an export folder needs the library root to mirror")
    return Path(out) / original.parent.relative_to(root) / name


# -- writing ---------------------------------------------------------------------------


_registered = False


def _pyexiv2():
    """pyexiv2, with the shoebox namespace registered (once per process)."""
    global _registered
    import pyexiv2

    if not _registered:
        pyexiv2.set_log_level(4)  # errors come back as exceptions; exiv2's warnings are not ours to print
        pyexiv2.registerNs(SHOEBOX_NS, SHOEBOX_PREFIX)
        _registered = True
    return pyexiv2


def _lang_alt(text: str) -> dict:
    return {'lang="x-default"': text}


def _plain(value) -> list[str] | str:
    """A value read back from pyexiv2 as what we compare: LangAlt's default text, arrays as lists."""
    if isinstance(value, dict):
        return value.get('lang="x-default"', next(iter(value.values()), ""))
    return value


def xmp_values(meta: PhotoMetadata, existing: dict, *, replace_keywords: bool) -> dict:
    """The XMP keys to set: keywords merged with what is there unless ``replace_keywords``."""
    def merged(key: str, ours: list[str]) -> list[str]:
        if replace_keywords:
            return ours
        theirs = existing.get(key) or []
        theirs = [theirs] if isinstance(theirs, str) else list(theirs)
        seen = {t.casefold() for t in theirs}
        return theirs + [k for k in ours if k.casefold() not in seen]

    values: dict = {
        "Xmp.dc.subject": merged("Xmp.dc.subject", meta.keywords),
        "Xmp.lr.hierarchicalSubject": merged("Xmp.lr.hierarchicalSubject", meta.hierarchical),
        "Xmp.digiKam.TagsList": merged("Xmp.digiKam.TagsList", meta.tags_list),
    }
    if meta.description:
        values["Xmp.dc.description"] = _lang_alt(meta.description)
    if meta.title:
        values["Xmp.dc.title"] = _lang_alt(meta.title)
    if meta.rating is not None:
        values["Xmp.xmp.Rating"] = str(meta.rating)
    # The provenance is ours and always rewritten: None deletes what an earlier export said, so a
    # field the owner has since taken over (their caption) is no longer named as a model's.
    values[f"Xmp.{SHOEBOX_PREFIX}.AIFields"] = list(meta.ai_fields) or None
    values[f"Xmp.{SHOEBOX_PREFIX}.AIModel"] = (meta.ai_fields and meta.ai_model) or None
    values[f"Xmp.{SHOEBOX_PREFIX}.AIPromptVersion"] = (meta.ai_fields and meta.ai_prompt_version) or None
    values.update(region_values(meta, existing))
    return {k: v for k, v in values.items() if v not in ([], "")}


REGIONS = "Xmp.mwg-rs.Regions"
REGION_LIST = f"{REGIONS}/mwg-rs:RegionList"
STRUCT, BAG = 'type="Struct"', 'type="Bag"'


def _number_text(value: float) -> str:
    return repr(round(float(value), 6))


def existing_regions(existing: dict) -> list[dict]:
    """The MWG regions in ``existing`` (pyexiv2's flat keys): each item's keys below ``RegionList[i]``."""
    items: dict[int, dict] = {}
    for key, value in existing.items():
        match = re.fullmatch(re.escape(REGION_LIST) + r"\[(\d+)\](.*)", key)
        if match:
            items.setdefault(int(match[1]), {})[match[2]] = value
    return [items[i] for i in sorted(items)]


def _region_box(item: dict):
    """A region's area as a top-left box, or None when it is not a normalised one."""
    try:
        x, y, w, h = (float(item[f"/mwg-rs:Area/stArea:{k}"]) for k in "xywh")
    except (KeyError, TypeError, ValueError):
        return None
    if str(item.get("/mwg-rs:Area/stArea:unit", "normalized")).casefold() != "normalized":
        return None
    return (x - w / 2, y - h / 2, w, h)


def _area_values(item: str, box) -> dict:
    """An ``mwg-rs:Area`` for a top-left box: centre-based and normalised, as MWG writes it."""
    x, y, w, h = box
    area = f"{item}/mwg-rs:Area/stArea:"
    return {f"{area}x": _number_text(x + w / 2), f"{area}y": _number_text(y + h / 2), f"{area}w": _number_text(w),
            f"{area}h": _number_text(h), f"{area}unit": "normalized"}


def region_values(meta: PhotoMetadata, existing: dict) -> dict:
    """XMP keys that write ``meta.regions`` as the MWG region list, keeping the regions already there
    that are not faces Shoebox names (other names, other places, pets, focus points). {} when there is
    no named face: the file's regions are then left as they are."""
    if not meta.regions:
        return {}
    from people.regions import to_stored, upright_shape

    # Regions measured on the upright image (their AppliedToDimensions has its shape) are kept turned
    # into the stored frame, since the list is written with the stored size.
    dims = f"{REGIONS}/mwg-rs:AppliedToDimensions"
    turn = upright_shape((existing.get(f"{dims}/stDim:w"), existing.get(f"{dims}/stDim:h")), meta.region_size,
                         meta.region_orientation)
    ours = {r["name"].casefold() for r in meta.regions}
    kept = []
    for item in existing_regions(existing):
        kind = str(item.get("/mwg-rs:Type") or "Face").casefold()
        name = _plain(item.get("/mwg-rs:Name")) or ""
        box = _region_box(item)
        if box and turn:
            box = to_stored(box, meta.region_orientation)
            item = {**item, **_area_values("", box)}
        if kind == "face" and (str(name).casefold() in ours
                               or (box and any(_overlaps(box, r["box"]) for r in meta.regions))):
            continue  # this face is one of ours: written below as Shoebox knows it now
        kept.append(item)
    values: dict = {REGIONS: STRUCT}
    if meta.region_size:
        values.update({dims: STRUCT, f"{dims}/stDim:w": str(meta.region_size[0]),
                       f"{dims}/stDim:h": str(meta.region_size[1]), f"{dims}/stDim:unit": "pixel"})
    values[REGION_LIST] = BAG
    for index, region in enumerate(meta.regions, start=1):
        item = f"{REGION_LIST}[{index}]"
        values.update({item: STRUCT, f"{item}/mwg-rs:Area": STRUCT, **_area_values(item, region["box"]),
                       f"{item}/mwg-rs:Name": region["name"], f"{item}/mwg-rs:Type": "Face"})
    for index, old in enumerate(kept, start=len(meta.regions) + 1):
        values.update({f"{REGION_LIST}[{index}]{suffix}": value for suffix, value in old.items()})
    # What was there and is not written again goes (a list that got shorter, old fields of an item).
    for key in existing:
        if key.startswith(REGIONS) and key not in values:
            values[key] = None
    return values


def changes(existing: dict, values: dict) -> dict:
    """{key: [before, after]} for the keys whose value would change (the dry-run preview)."""
    out = {}
    for key, value in values.items():
        before, after = _plain(existing.get(key)), _plain(value)
        if isinstance(before, list) and isinstance(after, list):
            if before == after:
                continue
        elif before == after:
            continue
        out[key] = [before, after]
    return out


def readable(found: dict, existing: dict, values: dict) -> dict:
    """``found`` (from :func:`changes`) with the many flat region keys shown as one: the region names."""
    if not any(key.startswith(REGIONS) for key in found):
        return found
    after = {k: v for k, v in {**existing, **values}.items() if v is not None}
    out = {k: v for k, v in found.items() if not k.startswith(REGIONS)}
    out[REGIONS] = [[_plain(item.get("/mwg-rs:Name")) or "" for item in existing_regions(flat)]
                    for flat in (existing, after)]
    return out


def _iptc_keyword(word: str) -> str:
    """A keyword within IPTC's 64 bytes, cut at a character boundary."""
    data = word.encode("utf-8")[:IPTC_KEYWORD_BYTES]
    return data.decode("utf-8", "ignore")


def _iptc_text(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _as_bags(packet: str) -> str:
    """exiv2's packet with the unordered arrays as rdf:Bag (pyexiv2 writes every new array as a Seq)."""
    for name in BAGS:
        packet = re.sub(rf"(<{name}>\s*)<rdf:Seq>(.*?)</rdf:Seq>(\s*</{name}>)",
                        r"\1<rdf:Bag>\2</rdf:Bag>\3", packet, flags=re.S)
    return packet


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.shoebox-{secrets.token_hex(4)}.tmp")


def _discard(temp: Path) -> None:
    """Remove a temporary file if it is there (its folder may be missing, or a file)."""
    try:
        temp.unlink()
    except (FileNotFoundError, NotADirectoryError):
        pass


def _fsync_replace(temp: Path, path: Path) -> None:
    with open(temp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(temp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _oserror(exc: OSError, path: Path) -> ExportError:
    reason = exc.strerror or str(exc)
    return ExportError(f"cannot write {path}: {reason}")


@contextmanager
def _writing(path: Path, temp: Path):
    """A write through ``temp``: its errors become this file's ExportError, and ``temp`` never stays."""
    try:
        yield
    except ExportError:
        raise
    except OSError as exc:
        raise _oserror(exc, path) from None
    except RuntimeError as exc:  # exiv2's errors
        raise ExportError(f"{path}: {exc}") from None
    finally:
        _discard(temp)


def write_sidecar(path: Path, meta: PhotoMetadata, *, replace_keywords: bool = False,
                  dry_run: bool = False, original: Path | None = None) -> FileResult:
    """Create or update the XMP sidecar at ``path``; every other field already in it survives.

    A sidecar without face regions starts its region list from the ``original``'s embedded
    one, so regions of faces Shoebox does not know are not hidden behind the sidecar.
    """
    pyexiv2 = _pyexiv2()
    result = FileResult(str(path), "sidecar")
    existing = {}
    if path.exists():
        try:
            with pyexiv2.Image(str(path)) as img:
                existing = img.read_xmp()
        except RuntimeError as exc:  # not an XMP file, or a damaged one: left as it is
            raise ExportError(f"{path}: the sidecar there cannot be read ({exc}); it was left as it is") from None
    in_file = existing
    if meta.regions and original is not None and not any(k.startswith(REGIONS) for k in existing):
        in_file = {**existing, **_embedded_regions(original)}
    values = xmp_values(meta, in_file, replace_keywords=replace_keywords)
    result.changes = readable(changes(existing, values), existing, values)
    if dry_run or not result.changes:
        return result
    temp = _temp_beside(path)
    with _writing(path, temp):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            temp.write_bytes(path.read_bytes())
        else:
            temp.write_text(EMPTY_PACKET, encoding="utf-8")
        with pyexiv2.Image(str(temp)) as img:
            img.modify_xmp(values)
            img.modify_raw_xmp(_as_bags(img.read_raw_xmp()))
        with pyexiv2.Image(str(temp)) as img:  # read back what was written
            check = img.read_xmp()
        if changes(check, values):
            raise ExportError(f"{path}: the written sidecar does not read back as written")
        _fsync_replace(temp, path)
    result.written = True
    return result


def _embedded_regions(original: Path) -> dict:
    """The MWG region keys of a file's embedded XMP ({} when it has none or cannot be read)."""
    try:
        with _pyexiv2().Image(str(original)) as img:
            return {k: v for k, v in img.read_xmp().items() if k.startswith(REGIONS)}
    except (RuntimeError, OSError, UnicodeDecodeError):
        return {}


def _iptc_keywords(img) -> list[str]:
    """The file's IPTC Keywords: UTF-8, or Latin-1 (what IIM assumes when no character set is declared)."""
    try:
        data = img.read_iptc()
    except UnicodeDecodeError:
        data = img.read_iptc(encoding="latin-1")
    words = data.get("Iptc.Application2.Keywords") or []
    return [words] if isinstance(words, str) else list(words)


_PHOTOSHOP_APP13 = b"Photoshop 3.0\x00"
_IRB_IPTC, _IRB_IPTC_DIGEST = 0x0404, 0x0425


def _iptc_digest(data: bytes) -> tuple[int, bytes | None] | None:
    """In a JPEG: where Photoshop's 16-byte IPTC digest is, and the IPTC block (None: none) it is about.

    None when the file is no JPEG or has no digest.
    """
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata segments after this
            return None
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xED and data[pos + 4 : pos + 4 + len(_PHOTOSHOP_APP13)] == _PHOTOSHOP_APP13:
            resources = _image_resources(data, pos + 4 + len(_PHOTOSHOP_APP13), min(end, len(data)))
            digest = resources.get(_IRB_IPTC_DIGEST)
            if digest is None or digest[1] != 16:
                return None
            block = resources.get(_IRB_IPTC)
            return digest[0], None if block is None else data[block[0] : block[0] + block[1]]
        pos = end
    return None


def _image_resources(data: bytes, pos: int, end: int) -> dict[int, tuple[int, int]]:
    """Photoshop image resources in ``data[pos:end]``: {id: (offset of its data, size)}."""
    found: dict[int, tuple[int, int]] = {}
    while pos + 12 <= end and data[pos : pos + 4] == b"8BIM":
        resource = int.from_bytes(data[pos + 4 : pos + 6], "big")
        pos += 6 + (data[pos + 6] + 2) // 2 * 2  # a Pascal name, padded to an even length
        size = int.from_bytes(data[pos : pos + 4], "big")
        pos += 4
        if pos + size > end:
            break
        found.setdefault(resource, (pos, size))
        pos += size + (size & 1)
    return found


def _keep_iptc_digest(before: bytes, temp: Path) -> None:
    """A JPEG's IPTC digest that was current before the write is made current again.

    exiv2 rewrites the IPTC but not Photoshop's digest of it; a stale digest tells MWG readers
    (Lightroom, ``exiftool -use MWG``, Shoebox's own scanner) that the IPTC was edited after the
    XMP, so they would prefer its 64-byte keywords and old title to the XMP just written. A digest
    that was already stale stays as it was: the file's IPTC was then newer than its XMP.
    """
    old = _iptc_digest(before)
    if old is None or (old[1] is not None and hashlib.md5(old[1]).digest() != before[old[0] : old[0] + 16]):
        return
    data = bytearray(temp.read_bytes())
    new = _iptc_digest(bytes(data))
    if new is None or new[1] is None:
        return
    data[new[0] : new[0] + 16] = hashlib.md5(new[1]).digest()
    temp.write_bytes(bytes(data))


def _pixels_digest(path: Path) -> str:
    from PIL import Image

    from gallery import imaging  # noqa: F401  (registers HEIF, JXL …)

    with Image.open(path) as image:
        image.load()
        return hashlib.blake2b(image.tobytes() + repr((image.mode, image.size)).encode(), digest_size=16).hexdigest()


def write_embedded(path: Path, meta: PhotoMetadata, *, replace_keywords: bool = False,
                   dry_run: bool = False) -> FileResult:
    """Write into the file itself, atomically, keeping its pixels and every other metadata block."""
    pyexiv2 = _pyexiv2()
    result = FileResult(str(path), "embedded")
    try:
        with pyexiv2.Image(str(path)) as img:
            access = img.get_access_mode()
            existing = img.read_xmp()
            mime = img.get_mime_type()
            iptc_keywords = _iptc_keywords(img) if access.get("iptc") in ("read", "read+write") else []
    except RuntimeError as exc:
        raise ExportError(f"{path}: exiv2 cannot read this file ({exc})") from None
    if access.get("xmp") != "read+write":
        raise ExportError(f"{path}: {mime} files cannot be written by exiv2; export a sidecar instead")
    in_file = existing
    if iptc_keywords and not existing.get("Xmp.dc.subject"):
        # No XMP keywords: the IPTC ones are the file's keywords (MWG), kept in the union like any other.
        in_file = {**existing, "Xmp.dc.subject": iptc_keywords}
    values = xmp_values(meta, in_file, replace_keywords=replace_keywords)
    result.changes = readable(changes(existing, values), existing, values)
    if dry_run or not result.changes:
        return result
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise ExportError(f"cannot write {path}: the file or its folder is read-only")
    temp = _temp_beside(path)
    with _writing(path, temp):
        before = _pixels_digest(path)
        original = path.read_bytes()
        temp.write_bytes(original)
        os.chmod(temp, os.stat(path).st_mode & 0o7777)
        with pyexiv2.Image(str(temp)) as img:
            img.modify_xmp(values)
            img.modify_raw_xmp(_as_bags(img.read_raw_xmp()))
            if access.get("iptc") == "read+write":
                iptc = {"Iptc.Envelope.CharacterSet": "\x1b%G"}
                if values.get("Xmp.dc.subject"):
                    iptc["Iptc.Application2.Keywords"] = [_iptc_keyword(k) for k in values["Xmp.dc.subject"]]
                if meta.description:
                    iptc["Iptc.Application2.Caption"] = _iptc_text(meta.description, IPTC_CAPTION_BYTES)
                if meta.title:  # MWG: IPTC ObjectName mirrors dc:title
                    iptc["Iptc.Application2.ObjectName"] = _iptc_text(meta.title, IPTC_TITLE_BYTES)
                img.modify_iptc(iptc)
            if access.get("exif") == "read+write" and meta.description:
                img.modify_exif({"Exif.Image.ImageDescription": meta.description})
        _keep_iptc_digest(original, temp)
        if _pixels_digest(temp) != before:
            raise ExportError(f"{path}: writing the metadata changed the pixels; the original was left as it was")
        with pyexiv2.Image(str(temp)) as img:
            if changes(img.read_xmp(), values):
                raise ExportError(f"{path}: the written file does not read back as written")
        _fsync_replace(temp, path)
    result.written = True
    return result
