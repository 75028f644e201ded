"""Exporting photos' metadata: which photos, with which options, and what became of each file.

The owner asks (``manage.py export_metadata``, the photo page, a tag's page);
:func:`export_photo` writes each present file of a photo (``tagging.export``)
and, after an embedded write, records the file's new size, time and content
hash so that the next rescan sees the same photo. In the worker, an export is
the on-demand *export* stage of the engine: its rows exist only for the
photos asked for, its ``model`` carries the options, and the jobs page shows
its progress and failures with their reasons like any other stage.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

from gallery import engine, stages
from gallery.content import hashes
from gallery.models import Photo, PhotoStage
from gallery.originals import OriginalMissing, source_path
from gallery.thumbnails import thumbnail_path
from tagging import export, tags
from tagging.models import PhotoTag

EXPORT = "export"
NAMINGS = ("darktable", "lightroom")


@dataclass(frozen=True)
class ExportOptions:
    embedded: bool = False  # into the files themselves (opt-in), else sidecars
    naming: str = "darktable"  # sidecar names: IMG.jpg.xmp (darktable, digiKam) or IMG.xmp (Lightroom)
    out: str = ""  # sidecars in this folder, mirroring the library, instead of beside the originals
    replace_keywords: bool = False  # else keywords already in a sidecar or file are kept (union)

    def __post_init__(self):
        if self.naming not in NAMINGS:
            raise ValueError(f"sidecar naming must be {' or '.join(NAMINGS)}, not {self.naming!r}")
        if self.out and not os.path.isabs(self.out):
            raise ValueError("the export folder must be an absolute path")
        if self.embedded and self.out:
            raise ValueError("an export folder is for sidecars; embedded export writes the originals")

    def as_model(self) -> str:
        """The options as the export stage's ``model`` string."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_model(cls, text: str) -> ExportOptions:
        return cls(**json.loads(text or "{}"))


def select(*, tag: str | None = None, photo_ids=None):
    """The photos to export: those with an accepted ``tag`` (or a tag below it), these ids, or all."""
    qs = Photo.objects.visible()
    if tag is not None:
        ids = tags.matching(tag)
        if not ids:
            raise ValueError(f"no tag “{tag}”")
        qs = qs.filter(Exists(PhotoTag.objects.filter(photo=OuterRef("pk"), tag_id__in=ids,
                                                      state=PhotoTag.State.ACCEPTED)))
    if photo_ids is not None:
        qs = qs.filter(pk__in=list(photo_ids))
    return qs.order_by("pk")


def export_photo(photo: Photo, options: ExportOptions, *, dry_run: bool = False) -> list[export.FileResult]:
    """Write (or, with ``dry_run``, preview) every present file of ``photo``; one result per file."""
    meta = export.metadata_for(photo)
    results, written = [], []
    for sf in photo.present_files():
        try:
            original = Path(os.fsdecode(source_path(sf)))
            if not original.is_file():
                raise OriginalMissing(f"{sf.relpath}: the original is not on disk")
        except OriginalMissing as exc:
            results.append(export.FileResult(sf.relpath, "embedded" if options.embedded else "sidecar", error=str(exc)))
            continue
        try:
            if options.embedded:
                result = export.write_embedded(original, meta, replace_keywords=options.replace_keywords,
                                               dry_run=dry_run)
            else:
                target = export.sidecar_path(original, naming=options.naming, root=Path(sf.library.root),
                                             out=Path(options.out) if options.out else None)
                result = export.write_sidecar(target, meta, replace_keywords=options.replace_keywords,
                                              dry_run=dry_run, original=original)
        except export.ExportError as exc:
            result = export.FileResult(str(original), "embedded" if options.embedded else "sidecar", error=str(exc))
        results.append(result)
        if result.written and options.embedded:
            written.append((sf, original))
    if written:
        record_new_content(photo, written)
    return results


def record_new_content(photo: Photo, written) -> None:
    """Files rewritten in place: their new size, time and hash, so a rescan finds the same photo."""
    found = set()  # (quick hash, whole hash, size) of each rewritten file
    with transaction.atomic():
        for sf, path in written:
            st = os.stat(path)
            type(sf).objects.filter(pk=sf.pk).update(size=st.st_size, mtime_ns=st.st_mtime_ns)
            found.add((*hashes(os.fsencode(path)), st.st_size))
        others = [sf for sf in photo.present_files() if sf.pk not in {w[0].pk for w in written}]
        if len(found) != 1 or others:
            return  # a copy not rewritten keeps the old content: the photo keeps its hash
        new_quick, new_hash, new_size = found.pop()
        if new_hash == photo.content_hash or Photo.objects.filter(content_hash=new_hash).exists():
            return
        old_hash = photo.content_hash
        Photo.objects.filter(pk=photo.pk).update(content_hash=new_hash, quick_hash=new_quick, hash_pending=False,
                                                 file_size=new_size)
    for size in settings.THUMBNAIL_SIZES:  # thumbnails are kept by content hash: same pixels, new name
        old = thumbnail_path(settings.THUMBNAIL_DIR, old_hash, size)
        if old.exists():
            new = thumbnail_path(settings.THUMBNAIL_DIR, new_hash, size)
            new.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old, new)


# -- in the worker: the export stage ------------------------------------------------------------


def queue(photo_ids, options: ExportOptions) -> int:
    """Ask the worker to export these photos with ``options``. Returns photos queued."""
    ids = list(photo_ids)
    model = options.as_model()
    with transaction.atomic():
        existing = set(PhotoStage.objects.filter(stage=EXPORT, photo_id__in=ids).values_list("photo_id", flat=True))
        PhotoStage.objects.bulk_create([PhotoStage(photo_id=pk, stage=EXPORT, model=model)
                                        for pk in ids if pk not in existing])
        # The newest request wins (a queued task for other options then finds nothing to claim);
        # a photo being exported right now finishes with the options it started with.
        PhotoStage.objects.filter(stage=EXPORT, photo_id__in=ids).exclude(state=PhotoStage.State.RUNNING).update(
            model=model, state=PhotoStage.State.PENDING, attempts=0, error="")
        return len(engine.enqueue(EXPORT, ids))


def run_export(batch) -> None:
    """The export stage: each photo's files written, or the photo failed with every file's reason."""
    options = ExportOptions.from_model(batch.model)
    for photo in batch.photos:
        with batch.guard(photo):
            errors = [r.error for r in export_photo(photo, options) if r.error]
            if errors:
                batch.fail(photo, "; ".join(errors)[:2000])
            else:
                batch.done(photo)


def register() -> None:
    stages.register(stages.StageSpec(
        name=EXPORT, order=90, runner=run_export, label="Metadata export", batch_size=lambda: 20, on_demand=True,
    ))
