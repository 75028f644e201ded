"""Walk a library root and bring the database in line with what is on disk.

One scan accounts for every file under the root: each becomes a photo's file
(new, unchanged, updated, moved or a duplicate of known content) or a file
skipped or failed with a human-readable reason. Files that were known but are
gone are flagged missing, never deleted. Rescans are incremental: a file whose
size and mtime are unchanged is not read again.

The expensive part (hashing, sniffing, reading metadata) runs in a few threads
without touching the database; results are written in batches. Large files are
not read whole: the quick hash of their size, head and tail stands in for the
content hash unless another photo has the same one (``gallery.content``).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone as djtz

from gallery import content, imaging, metadata, originals, pgcopy, places
from gallery.models import Library, Photo, SourceFile
from gallery.originals import inside_root

log = logging.getLogger(__name__)

# Folders that hold other programs' caches, never photos.
IGNORED_DIRS = {b"@eaDir", b"#recycle", b".@__thumb", b"$RECYCLE.BIN", b"System Volume Information", b"lost+found"}
IGNORED_FILES = {b".DS_Store", b"Thumbs.db", b"desktop.ini", b".nomedia"}
BATCH = 200
# Text from files and sidecars is the owner's, but unbounded: keep what a person could have written.
MAX_DESCRIPTION = 20_000
MAX_KEYWORDS = 500


class Outcome:
    IMPORTED = "imported"
    UNCHANGED = "unchanged"
    UPDATED = "updated"  # same path, new content: the photo keeps its identity
    REREAD = "reread"  # same content, metadata read again on request (import_library --reread)
    MOVED = "moved"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class FileResult:
    path: str
    outcome: str
    reason: str = ""
    photo_id: int | None = None

    def as_dict(self) -> dict:
        d = {"path": self.path, "outcome": self.outcome}
        if self.reason:
            d["reason"] = self.reason
        if self.photo_id is not None:
            d["photo_id"] = self.photo_id
        return d


@dataclass
class ScanReport:
    library: str
    root: str
    files: list[FileResult] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ignored: int = 0
    seconds: float = 0.0
    # False when the scan stopped at its deadline: files not yet read are not in ``files``,
    # and nothing was flagged missing. The next scan goes on where this one stopped.
    complete: bool = True

    @property
    def totals(self) -> dict[str, int]:
        counts = Counter(f.outcome for f in self.files)
        totals = {k: counts.get(k, 0) for k in (
            Outcome.IMPORTED, Outcome.UNCHANGED, Outcome.UPDATED, Outcome.MOVED,
            Outcome.DUPLICATE, Outcome.SKIPPED, Outcome.FAILED)}
        if counts.get(Outcome.REREAD):
            totals[Outcome.REREAD] = counts[Outcome.REREAD]
        totals["missing"] = len(self.missing)
        totals["ignored"] = self.ignored
        totals["files"] = len(self.files)
        return totals

    def new_photo_ids(self) -> list[int]:
        return [f.photo_id for f in self.files if f.outcome in (Outcome.IMPORTED, Outcome.UPDATED) and f.photo_id]

    def updated_photo_ids(self) -> list[int]:
        """Photos whose content changed in place: every stage is to be done again."""
        return [f.photo_id for f in self.files if f.outcome == Outcome.UPDATED and f.photo_id]

    def changed_photo_ids(self) -> list[int]:
        """Photos this scan added, updated, read again or gave a new path."""
        kinds = (Outcome.IMPORTED, Outcome.UPDATED, Outcome.MOVED, Outcome.DUPLICATE, Outcome.REREAD)
        return sorted({f.photo_id for f in self.files if f.outcome in kinds and f.photo_id})

    def as_dict(self) -> dict:
        return {
            "library": self.library,
            "root": self.root,
            "seconds": round(self.seconds, 3),
            "totals": self.totals,
            "files": [f.as_dict() for f in self.files],
            "missing": self.missing,
        }


def display_path(raw: bytes) -> str:
    """A path for people: undecodable bytes shown as \\xNN escapes."""
    return raw.decode("utf-8", errors="backslashreplace")


@dataclass
class _Entry:
    rel: bytes
    size: int
    mtime_ns: int
    error: str = ""  # set when the entry could not be read (e.g. a folder without permission)


def walk(root: bytes, *, skip: set[bytes] = frozenset()) -> Iterator[_Entry]:
    """Every regular file below ``root``, as paths relative to it, sorted.

    Follows symlinks, but only to folders and files whose real path is inside
    the root's real path (``originals.inside_root``, the rule that serving a
    file applies too); a link leading out of the library is yielded as an
    entry with an ``error`` and not followed. Never enters a folder twice (no
    loops). An unreadable folder or file is yielded as an entry with an
    ``error`` instead of stopping the walk.
    """
    seen_dirs: set[tuple[int, int]] = set()
    root_st = os.stat(root)
    real_root = os.path.realpath(root)
    seen_dirs.add((root_st.st_dev, root_st.st_ino))
    stack: list[bytes] = [b""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield _Entry(rel_dir, 0, 0, error=f"cannot read folder: {exc.strerror or exc}")
            continue
        subdirs = []
        for entry in entries:
            name = entry.name
            rel = os.path.join(rel_dir, name) if rel_dir else name
            if name in IGNORED_FILES or name.startswith(b"._"):
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                yield _Entry(rel, 0, 0, error=f"cannot read file: {exc.strerror or exc}")
                continue
            outside = ""  # why a symlink is not followed: it leads out of the library
            if entry.is_symlink() and not inside_root(real_root, entry.path):
                target = display_path(os.path.realpath(entry.path))
                outside = f"not followed: a symlink to {target}, outside the library"
            if stat.S_ISDIR(st.st_mode):
                if name in IGNORED_DIRS or name.startswith(b".") or entry.path in skip:
                    continue
                key = (st.st_dev, st.st_ino)
                if key in seen_dirs:
                    continue  # a symlink loop or a second link to a folder already walked
                if outside:
                    yield _Entry(rel, 0, 0, error=outside)
                    continue
                seen_dirs.add(key)
                subdirs.append(rel)
            elif stat.S_ISREG(st.st_mode):
                if outside:
                    yield _Entry(rel, 0, 0, error=outside)
                    continue
                yield _Entry(rel, st.st_size, st.st_mtime_ns)
        stack.extend(reversed(subdirs))


@dataclass
class _Read:
    """What was learned from one file before touching the database."""

    entry: _Entry
    content_hash: str = ""  # the whole-file hash, or (``pending``) the quick hash in its place
    quick_hash: str = ""
    pending: bool = False  # only the quick hash was read: _confirm_content decides
    info: imaging.ImageInfo | None = None
    meta: metadata.PhotoMetadata | None = None
    outcome: str = ""
    reason: str = ""
    changing: bool = False  # changed while read: reported, nothing stored, read again next scan


CHANGING = "the file changed while it was being read (still being copied or saved?): it is read again at the next scan"


class LibraryVanished(OSError):
    """The library's folder disappeared during a scan (a drive unplugged, a share unmounted)."""


def _read_file(abspath: bytes, entry: _Entry, *, max_pixels: int) -> _Read:
    """Hash, identify and read the metadata of one file, as it is when the read starts.

    The file's size and time are taken again just before reading (it may have
    been replaced since the folder was listed) and compared afterwards: a file
    that changed while it was read (a copy still running) is reported and left
    for the next scan rather than stored half-read.
    """
    r = _Read(entry)
    try:
        before = os.stat(abspath)
    except OSError as exc:
        r.outcome, r.reason = Outcome.FAILED, f"cannot read file: {exc.strerror or exc}"
        return r
    if not stat.S_ISREG(before.st_mode):
        r.outcome, r.reason = Outcome.FAILED, "no longer a regular file"
        return r
    entry.size, entry.mtime_ns = before.st_size, before.st_mtime_ns
    if entry.size == 0:
        r.outcome, r.reason = Outcome.SKIPPED, "empty file (0 bytes)"
        return r
    try:
        r.quick_hash, r.content_hash = content.scan_hashes(abspath, entry.size)
        if not r.content_hash:
            r.content_hash, r.pending = r.quick_hash, True
        info = imaging.identify(abspath, max_pixels=max_pixels)
    except imaging.SkipFile as exc:
        r.outcome, r.reason = Outcome.SKIPPED, exc.reason
        return _unless_changed(r, abspath, before)
    except imaging.BrokenImage as exc:
        r.outcome, r.reason = Outcome.FAILED, exc.reason
        return _unless_changed(r, abspath, before)
    except OSError as exc:
        r.outcome, r.reason = Outcome.FAILED, f"cannot read file: {exc.strerror or exc}"
        return _unless_changed(r, abspath, before)
    try:
        r.meta = metadata.read_metadata(abspath, info.image, mtime=entry.mtime_ns / 1e9)
    except OSError as exc:
        r.outcome, r.reason = Outcome.FAILED, f"cannot read metadata: {exc.strerror or exc}"
    finally:
        if info.image is not None:
            info.image.close()
            info.image = None
    r.info = info
    return _unless_changed(r, abspath, before)


def _unless_changed(r: _Read, abspath: bytes, before: os.stat_result) -> _Read:
    """``r``, or a result saying the file changed while it was read (nothing of it is stored)."""
    try:
        after = os.stat(abspath)
        same = (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    except OSError:
        same = False
    if not same:
        r.outcome, r.reason, r.info, r.meta, r.changing = Outcome.FAILED, CHANGING, None, None, True
    return r


def _photo_fields(r: _Read) -> dict:
    """Photo columns from what was read (used for new photos and updated ones)."""
    info, meta = r.info, r.meta
    swap = meta.orientation in (5, 6, 7, 8)
    taken = meta.taken_at or datetime.fromtimestamp(r.entry.mtime_ns / 1e9, tz=timezone.utc).replace(tzinfo=None)
    # The true instant when the offset or the zone is known (floating otherwise), and the
    # offset of the wall clock shown, which the zone at the GPS position may supply.
    taken_at, offset = metadata.capture_instant(taken, meta.taken_at_offset, meta.taken_at_zone)
    return dict(
        content_hash=r.content_hash,
        quick_hash=r.quick_hash,
        hash_pending=r.pending,
        file_size=r.entry.size,
        format=info.format,
        mime_type=info.mime_type,
        width=info.height if swap else info.width,
        height=info.width if swap else info.height,
        orientation=meta.orientation,
        frames=info.frames,
        taken_at=taken_at,
        taken_at_offset=offset,
        taken_at_source=meta.taken_at_source or metadata.TakenFrom.FILE_MTIME,
        taken_at_zone=meta.taken_at_zone,
        taken_at_zone_source=meta.taken_at_zone_source,
        camera_make=meta.camera_make[:100],
        camera_model=meta.camera_model[:100],
        lens=meta.lens[:200],
        focal_length=meta.focal_length,
        aperture=meta.aperture,
        exposure_time=meta.exposure_time,
        iso=meta.iso,
        latitude=meta.latitude,
        longitude=meta.longitude,
        altitude=meta.altitude,
        title=meta.title[:500],
        description=meta.description[:MAX_DESCRIPTION],
        keywords=[k[:500] for k in meta.keywords[:MAX_KEYWORDS]],
        rating=meta.rating,
        metadata=meta.extra,
        status=Photo.Status.OK,
        broken_reason="",
        thumbnails_at=None,
    )


class Scanner:
    """One scan of one library. ``run()`` returns a ScanReport."""

    def __init__(self, library: Library, *, progress: Callable[[int, int], None] | None = None,
                 deadline: float | None = None, heartbeat: Callable[[], None] | None = None,
                 reread: bool = False):
        """``deadline`` (``time.monotonic()``): stop after the batch that passes it, leaving the
        report incomplete; ``heartbeat()`` is called after every batch. ``reread``: open every
        file, unchanged ones too, and store their metadata again (after an upgrade that reads
        more of it, or sidecars edited by another program: a sidecar's change alone is not seen)."""
        self.library = library
        self.reread = reread
        self.root = library.root_bytes
        self.progress = progress
        self.deadline = deadline
        self.heartbeat = heartbeat
        self.max_pixels = settings.MAX_IMAGE_PIXELS
        self.report = ScanReport(library=library.name, root=library.root)
        self._stopping = False
        self.now = djtz.now()

    def run(self) -> ScanReport:
        started = time.monotonic()
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"library folder does not exist or is not a folder: {self.library.root}")
        skip = {os.fsencode(str(settings.DATA_DIR))}
        entries = list(walk(self.root, skip=skip))
        self._check_root()
        known = {bytes(sf.path_bytes): sf for sf in SourceFile.objects.filter(library=self.library)}
        seen = {e.rel for e in entries}
        self.vanished = {rel: sf for rel, sf in known.items() if rel not in seen}
        self.known = known

        unchanged_ids = []
        todo: list[_Entry] = []
        for e in entries:
            sf = known.get(e.rel)
            if e.error:
                self.report.files.append(FileResult(display_path(e.rel), Outcome.FAILED, e.error))
            elif (sf is not None and sf.size == e.size and sf.mtime_ns == e.mtime_ns and not sf.missing
                  and not (self.reread and sf.outcome == SourceFile.Outcome.PHOTO)):
                unchanged_ids.append(sf.pk)
                self.report.files.append(self._unchanged_result(sf))
            else:
                todo.append(e)
        SourceFile.objects.filter(pk__in=unchanged_ids).update(last_seen=self.now)

        # Reading files (hashing, sniffing, metadata) runs in SCAN_THREADS threads while this
        # one writes the previous batch; the kernel is asked ahead for the parts of the next
        # batches' files that will be read.
        batches = [todo[i : i + BATCH] for i in range(0, len(todo), BATCH)]
        self.done, self.total = len(entries) - len(todo), len(entries)
        for batch in batches[:2]:
            self._prefetch(batch)
        threads = max(1, settings.SCAN_THREADS)
        with ThreadPoolExecutor(max_workers=threads) as pool:

            def submit(batch: list[_Entry]):
                # One task per thread, not per file: a thread hands the GIL over once a batch.
                step = -(-len(batch) // threads)
                return [pool.submit(self._read_all, batch[i : i + step]) for i in range(0, len(batch), step)]

            ahead = submit(batches[0]) if batches else []
            for n, batch in enumerate(batches):
                current = ahead
                ahead = submit(batches[n + 1]) if n + 1 < len(batches) else []
                if n + 2 < len(batches):
                    self._prefetch(batches[n + 2])
                if not self._write_batch([r for f in current for r in f.result()], more=bool(ahead)):
                    self._stopping = True  # the batch being read ahead stops after its current file
                    for future in ahead:
                        future.cancel()
                    break

        if self.report.complete:
            self._check_root()
            self._flag_missing()
        self.report.seconds = time.monotonic() - started
        return self.report

    def _check_root(self) -> None:
        if not os.path.isdir(self.root):
            raise LibraryVanished(
                f"the library folder {self.library.root} disappeared during the scan (a drive unplugged or "
                "a share unmounted?); nothing was flagged missing — rescan when it is back"
            )

    def _write_batch(self, reads: list[_Read], *, more: bool) -> bool:
        """Store one batch's reads; False when the scan stops here (its deadline passed, files remain)."""
        self._check_root()  # reads that failed because the folder went away are not stored
        with transaction.atomic():
            self._store(reads)
        self.done += len(reads)
        if self.progress:
            self.progress(self.done, self.total)
        if self.heartbeat:
            self.heartbeat()
        if more and self.deadline is not None and time.monotonic() > self.deadline:
            self.report.complete = False
            return False
        return True

    def _prefetch(self, batch: list[_Entry]) -> None:
        content.prefetch(os.path.join(self.root, e.rel) for e in batch)

    def _read_all(self, entries: list[_Entry]) -> list[_Read]:
        reads = []
        for entry in entries:
            if self._stopping:
                break
            reads.append(self._read(entry))
        return reads

    def _read(self, entry: _Entry) -> _Read:
        return _read_file(os.path.join(self.root, entry.rel), entry, max_pixels=self.max_pixels)

    def _unchanged_result(self, sf: SourceFile) -> FileResult:
        path = sf.relpath
        if sf.outcome == SourceFile.Outcome.PHOTO:
            return FileResult(path, Outcome.UNCHANGED, photo_id=sf.photo_id)
        return FileResult(path, sf.outcome, sf.reason)

    # -- writing -------------------------------------------------------------

    def _store(self, reads: list[_Read]) -> None:
        self._new_files: list[SourceFile] = []
        self._confirm_content(reads)
        hashes = {r.content_hash for r in reads if r.info is not None and not r.outcome}
        by_hash = {p.content_hash: p for p in Photo.objects.filter(content_hash__in=hashes)}
        new_photos: list[Photo] = []
        given_quick_hashes: list[Photo] = []
        for r in reads:
            rel = r.entry.rel
            path = display_path(rel)
            if r.changing:  # leave the file's row as it was: the next scan sees it changed
                self.report.files.append(FileResult(path, r.outcome, r.reason))
                continue
            if r.outcome:  # skipped or failed before reaching the database
                self._upsert_file(r.entry, photo=None, outcome=r.outcome, reason=r.reason)
                self.report.files.append(FileResult(path, r.outcome, r.reason))
                continue
            known = self.known.get(rel)
            photo = by_hash.get(r.content_hash)
            if photo is not None and photo.pk is not None and not photo.quick_hash:
                # A photo from before quick hashes: it has one now (its content was read again).
                photo.quick_hash = r.quick_hash
                given_quick_hashes.append(photo)
            if photo is not None and photo.pk is None:
                # Same content as a photo first seen earlier in this batch.
                r.outcome = Outcome.DUPLICATE
                self.report.files.append(FileResult(path, Outcome.DUPLICATE))
                continue
            if photo is not None:
                if known is not None and known.photo_id == photo.pk:
                    # Touched (mtime changed) but the same content; or read again on request.
                    outcome = Outcome.UNCHANGED
                    if self.reread:
                        self._reread(photo, r)
                        outcome = Outcome.REREAD
                    self._upsert_file(r.entry, photo=photo, outcome=SourceFile.Outcome.PHOTO)
                    self.report.files.append(FileResult(path, outcome, photo_id=photo.pk))
                elif self._take_over_vanished(photo, r.entry):
                    self.report.files.append(FileResult(path, Outcome.MOVED, photo_id=photo.pk))
                else:
                    self._upsert_file(r.entry, photo=photo, outcome=SourceFile.Outcome.PHOTO)
                    self.report.files.append(FileResult(path, Outcome.DUPLICATE, photo_id=photo.pk))
                continue
            fields = _photo_fields(r)
            old = self._photo_to_update(known)
            if old is not None:
                for name, value in fields.items():
                    setattr(old, name, value)
                old.save()
                self._upsert_file(r.entry, photo=old, outcome=SourceFile.Outcome.PHOTO)
                by_hash[old.content_hash] = old
                self.report.files.append(FileResult(path, Outcome.UPDATED, photo_id=old.pk))
                continue
            photo = Photo(**fields)
            new_photos.append(photo)
            by_hash[photo.content_hash] = photo
            # The file row is written once the photo has a primary key.
            self.report.files.append(FileResult(path, Outcome.IMPORTED))
            r.outcome = Outcome.IMPORTED

        if new_photos:
            self._geocode(new_photos)
            pgcopy.insert(new_photos)
            results = {f.path: f for f in self.report.files[-len(reads):]}
            for r in reads:
                if r.outcome in (Outcome.IMPORTED, Outcome.DUPLICATE):
                    photo = by_hash[r.content_hash]
                    self._upsert_file(r.entry, photo=photo, outcome=SourceFile.Outcome.PHOTO)
                    results[display_path(r.entry.rel)].photo_id = photo.pk
        Photo.objects.bulk_update(given_quick_hashes, ["quick_hash"])
        self._flush_files()

    def _confirm_content(self, reads: list[_Read]) -> None:
        """Hash whole the files whose quick hash is not enough to tell them apart (``gallery.content``).

        Those are files whose quick hash another photo has or another file of the batch
        has, and files of the size of a photo imported before quick hashes. A photo that
        still waits for its whole hash and shares a quick hash with one of them is hashed
        whole first, from another of its files; when it has no other file left to read
        (moved away, or this is its own file touched), the file's whole hash becomes its own.
        """
        pending = [r for r in reads if r.pending and r.info is not None and not r.outcome]
        if not pending:
            return
        quick = Counter(r.quick_hash for r in pending)
        sizes = {r.entry.size for r in pending}
        candidates = list(Photo.objects.filter(
            models.Q(quick_hash__in=list(quick)) | models.Q(quick_hash="", file_size__in=sizes)
        ).only("id", "content_hash", "quick_hash", "hash_pending", "file_size"))
        taken = {p.quick_hash for p in candidates} | {q for q, n in quick.items() if n > 1}
        old_sizes = {p.file_size for p in candidates if not p.quick_hash}
        for r in pending:
            if r.quick_hash not in taken and r.entry.size not in old_sizes:
                continue  # content no photo has: the thumbnail stage hashes it whole
            path = os.path.join(self.root, r.entry.rel)
            try:
                st = os.stat(path)
                if (st.st_size, st.st_mtime_ns) != (r.entry.size, r.entry.mtime_ns):
                    raise content.ContentChanged()
                r.content_hash, r.pending = content.whole_hash_matching(path, r.quick_hash), False
            except content.ContentChanged:  # since it was read: nothing stored, read again next scan
                r.outcome, r.reason, r.changing = Outcome.FAILED, CHANGING, True
                continue
            except OSError as exc:
                r.outcome, r.reason = Outcome.FAILED, f"cannot read file: {exc.strerror or exc}"
                continue
            for photo in candidates:
                if photo.hash_pending and photo.quick_hash == r.quick_hash:
                    self._confirm_photo(photo, r)

    def _confirm_photo(self, photo: Photo, r: _Read) -> None:
        """Give ``photo`` (whose quick hash ``r`` has) its whole hash, read from another of its files,
        or ``r``'s when none is left to read."""
        whole = None
        for sf in photo.present_files().order_by("id"):
            if sf.library_id == self.library.pk and bytes(sf.path_bytes) == r.entry.rel:
                continue  # this very file, as it is now
            try:
                whole = content.whole_hash_matching(originals.source_path(sf), photo.quick_hash)
                break
            except OSError:
                continue  # gone (moved away?) or changed since: try its next file
        else:
            whole = r.content_hash
        if whole is None or Photo.objects.filter(content_hash=whole).exists():
            return  # left pending: the thumbnail stage settles it
        Photo.objects.filter(pk=photo.pk).update(content_hash=whole, hash_pending=False)
        photo.content_hash, photo.hash_pending = whole, False

    def _reread(self, photo: Photo, r: _Read) -> None:
        """Store what was read again from a file whose content did not change."""
        fields = _photo_fields(r)
        for name, value in fields.items():
            setattr(photo, name, value)
        if photo.latitude is not None:
            self._geocode([photo])
        photo.save()

    def _photo_to_update(self, known: SourceFile | None) -> Photo | None:
        """The photo a changed file should update in place, if any.

        An edited file keeps its photo (and all that hangs off it) unless the
        old content is still on disk somewhere else, in which case the edit
        becomes a new photo.
        """
        if known is None or known.photo_id is None:
            return None
        others = SourceFile.objects.filter(photo_id=known.photo_id, missing=False).exclude(pk=known.pk)
        if others.exists():
            return None
        return Photo.objects.filter(pk=known.photo_id).first()

    def _take_over_vanished(self, photo: Photo, entry: _Entry) -> bool:
        """If ``photo`` lost a file (gone from its old path), move that row here."""
        for rel, sf in list(self.vanished.items()):
            if sf.photo_id == photo.pk:
                existing_here = self.known.get(entry.rel)
                if existing_here is not None and existing_here.pk != sf.pk:
                    existing_here.delete()
                self._set_path(sf, entry)
                sf.missing, sf.missing_since, sf.last_seen = False, None, self.now
                sf.save()
                del self.vanished[rel]
                self.known[entry.rel] = sf
                return True
        missing = SourceFile.objects.filter(photo=photo, missing=True).first()
        if missing is not None and entry.rel not in self.known:
            # Moved across libraries or between scans: reuse the missing row.
            missing.library = self.library
            self._set_path(missing, entry)
            missing.missing, missing.missing_since, missing.last_seen = False, None, self.now
            missing.save()
            self.known[entry.rel] = missing
            return True
        return False

    def _set_path(self, sf: SourceFile, entry: _Entry) -> None:
        sf.path_bytes = entry.rel
        sf.relpath = display_path(entry.rel)
        sf.folder = display_path(os.path.dirname(entry.rel))
        sf.size, sf.mtime_ns = entry.size, entry.mtime_ns

    def _upsert_file(self, entry: _Entry, *, photo: Photo | None, outcome: str, reason: str = "") -> None:
        """Record what became of a file; rows for new paths are inserted together by _flush_files."""
        sf = self.known.get(entry.rel)
        new = sf is None
        if new:
            sf = SourceFile(library=self.library)
        self._set_path(sf, entry)
        sf.photo = photo
        sf.outcome = outcome
        sf.reason = reason
        sf.missing, sf.missing_since, sf.last_seen = False, None, self.now
        if new:
            self._new_files.append(sf)
        else:
            sf.save()
        self.known[entry.rel] = sf

    def _flush_files(self) -> None:
        pgcopy.insert(self._new_files)
        self._new_files = []

    def _geocode(self, photos: list[Photo]) -> None:
        if not settings.GEOCODE:
            return
        located = [p for p in photos if p.latitude is not None and p.longitude is not None]
        for photo, place in zip(located, places.lookup([(p.latitude, p.longitude) for p in located])):
            photo.place_city = place.city[:200]
            photo.place_region = place.region[:200]
            photo.place_country = place.country[:100]
            photo.place_country_code = place.country_code[:2]

    def _flag_missing(self) -> None:
        for sf in self.vanished.values():
            self.report.missing.append(sf.relpath)
        ids = [sf.pk for sf in self.vanished.values() if not sf.missing]
        SourceFile.objects.filter(pk__in=ids).update(missing=True, missing_since=self.now)
