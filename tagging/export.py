"""Giving the metadata back to the photos: XMP sidecars (default) or embedded XMP/IPTC/EXIF (opt-in), via pyexiv2.

What is written for a photo (:func:`metadata_for`): its accepted tags as
``dc:subject`` (flat, every level), ``lr:hierarchicalSubject`` (``|``) and
``digiKam:TagsList`` (``/``); its caption (the owner's text wins over the
model's) as ``dc:description``; its title or short caption as ``dc:title``;
its rating as ``xmp:Rating``; and, in the ``shoebox`` namespace, which of
those came from a model, which model and prompt version. Embedded mode also
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

SHOEBOX_NS = "https://shoebox.local/ns/1.0/"
SHOEBOX_PREFIX = "shoebox"
IPTC_KEYWORD_BYTES = 64
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
    model = Caption.objects.filter(photo=photo).order_by("-created_at").first()
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
    return meta


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
    if meta.ai_fields:
        values[f"Xmp.{SHOEBOX_PREFIX}.AIFields"] = list(meta.ai_fields)
        values[f"Xmp.{SHOEBOX_PREFIX}.AIModel"] = meta.ai_model
        values[f"Xmp.{SHOEBOX_PREFIX}.AIPromptVersion"] = meta.ai_prompt_version
    return {k: v for k, v in values.items() if v not in ([], "")}


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


def write_sidecar(path: Path, meta: PhotoMetadata, *, replace_keywords: bool = False,
                  dry_run: bool = False) -> FileResult:
    """Create or update the XMP sidecar at ``path``; every other field already in it survives."""
    pyexiv2 = _pyexiv2()
    result = FileResult(str(path), "sidecar")
    existing = {}
    if path.exists():
        with pyexiv2.Image(str(path)) as img:
            existing = img.read_xmp()
    values = xmp_values(meta, existing, replace_keywords=replace_keywords)
    result.changes = changes(existing, values)
    if dry_run or not result.changes:
        return result
    temp = _temp_beside(path)
    try:
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
    except ExportError:
        raise
    except OSError as exc:
        raise _oserror(exc, path) from None
    except RuntimeError as exc:  # exiv2's errors
        raise ExportError(f"{path}: {exc}") from None
    finally:
        temp.unlink(missing_ok=True)
    result.written = True
    return result


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
    except RuntimeError as exc:
        raise ExportError(f"{path}: exiv2 cannot read this file ({exc})") from None
    if access.get("xmp") != "read+write":
        raise ExportError(f"{path}: {mime} files cannot be written by exiv2; export a sidecar instead")
    values = xmp_values(meta, existing, replace_keywords=replace_keywords)
    result.changes = changes(existing, values)
    if dry_run or not result.changes:
        return result
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise ExportError(f"cannot write {path}: the file or its folder is read-only")
    temp = _temp_beside(path)
    try:
        before = _pixels_digest(path)
        temp.write_bytes(path.read_bytes())
        os.chmod(temp, os.stat(path).st_mode & 0o7777)
        with pyexiv2.Image(str(temp)) as img:
            img.modify_xmp(values)
            img.modify_raw_xmp(_as_bags(img.read_raw_xmp()))
            if access.get("iptc") == "read+write":
                iptc = {"Iptc.Envelope.CharacterSet": "\x1b%G",
                        "Iptc.Application2.Keywords": [_iptc_keyword(k) for k in values["Xmp.dc.subject"]]}
                if meta.description:
                    iptc["Iptc.Application2.Caption"] = _iptc_text(meta.description, IPTC_CAPTION_BYTES)
                img.modify_iptc(iptc)
            if access.get("exif") == "read+write" and meta.description:
                img.modify_exif({"Exif.Image.ImageDescription": meta.description})
        if _pixels_digest(temp) != before:
            raise ExportError(f"{path}: writing the metadata changed the pixels; the original was left as it was")
        with pyexiv2.Image(str(temp)) as img:
            if changes(img.read_xmp(), values):
                raise ExportError(f"{path}: the written file does not read back as written")
        _fsync_replace(temp, path)
    except ExportError:
        raise
    except OSError as exc:
        raise _oserror(exc, path) from None
    except RuntimeError as exc:  # exiv2's errors
        raise ExportError(f"{path}: {exc}") from None
    finally:
        temp.unlink(missing_ok=True)
    result.written = True
    return result
