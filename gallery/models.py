"""Libraries, photos, the files they came from, and per-photo stage state."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.expressions import RawSQL
from django.db.models.functions import Collate
from django.utils import timezone as djtz

from gallery.metadata import TakenFrom, format_offset, offset_delta, time_zone


class Library(models.Model):
    """A root folder that Shoebox imports from. Rescans are incremental."""

    class ScanState(models.TextChoices):
        IDLE = "idle"
        QUEUED = "queued"  # a scan task waits for the worker
        SCANNING = "scanning"  # a worker holds the scan (``scan_holder``, until ``scan_lease_until``)
        FAILED = "failed"  # the last scan stopped with ``scan_error``; a rescan starts again

    name = models.CharField(max_length=200, unique=True)
    root = models.CharField(max_length=4096, unique=True, help_text="Absolute path of the folder")
    created_at = models.DateTimeField(auto_now_add=True)
    scan_state = models.CharField(max_length=20, choices=ScanState.choices, default=ScanState.IDLE)
    scan_started_at = models.DateTimeField(null=True, blank=True)
    scan_finished_at = models.DateTimeField(null=True, blank=True)
    scan_error = models.TextField(blank=True)
    last_scan_totals = models.JSONField(default=dict, blank=True)
    # A scan in the worker runs in slices of bounded time; these carry it from one to the next.
    scan_progress = models.JSONField(default=dict, blank=True)  # outcome counts of the slices so far
    scan_holder = models.CharField(max_length=200, blank=True)  # the process scanning (gallery.holders)
    scan_lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "libraries"

    def __str__(self) -> str:
        return self.name

    @property
    def root_bytes(self) -> bytes:
        return os.fsencode(self.root)

    @property
    def is_busy(self) -> bool:
        return self.scan_state in (self.ScanState.QUEUED, self.ScanState.SCANNING)


class PhotoQuerySet(models.QuerySet):
    def visible(self):
        """Photos to show in the gallery: decodable and with at least one file present."""
        return self.filter(status=Photo.Status.OK).filter(
            models.Exists(SourceFile.objects.filter(photo=models.OuterRef("pk"), missing=False))
        )

    def in_library(self, library_id):
        return self.filter(
            models.Exists(SourceFile.objects.filter(photo=models.OuterRef("pk"), library_id=library_id))
        )

    def in_folder(self, library_id, folder: str, *, collect: bool = False):
        """Photos with a file present in ``folder`` or any folder below it (what the folder list shows).

        ``collect``: find the folder's photos first and hand Postgres their ids as an array, which it
        cannot turn back into a join: one primary-key probe per photo of the folder, whatever the size
        of the library (for ``newest_first(collect=True)`` on a small folder).
        """
        if collect:
            return self.among(SourceFile.objects.filter(library_id=library_id, missing=False).under(folder)
                              .values("photo_id"))
        files = SourceFile.objects.filter(photo=models.OuterRef("pk"), library_id=library_id, missing=False)
        if folder:
            files = files.under(folder)
        return self.filter(models.Exists(files))

    def among(self, ids):
        """Photos whose id ``ids`` (a one-column queryset) selects, collected first and handed to Postgres
        as an array, which it cannot turn back into a join: one primary-key probe per id, whatever the
        size of the library. For a small set sorted by ``newest_first(collect=True)``."""
        sql, params = ids.query.sql_with_params()
        return self.filter(pk__in=RawSQL(f"SELECT unnest(ARRAY({sql}))", params))

    def in_year(self, year: int):
        # A range, not __year, so the (taken_at, id) index serves it.
        start = datetime(year, 1, 1, tzinfo=timezone.utc)
        return self.filter(taken_at__gte=start, taken_at__lt=start.replace(year=year + 1))

    def newest_first(self, *, collect: bool = False):
        """Newest first, along the (taken_at, id) index.

        ``collect``: sort the rows the filters select instead of walking the
        index. For a small subset (a folder's photos) that is far cheaper: the
        planner expects them spread over time and walks the index from the
        newest photo, but a folder holds photos of one period — 41,654 photos
        walked to find 61 (bench/grid_bench.py). The expression is a fence the
        planner cannot answer from the index.
        """
        if collect:
            unindexed = models.ExpressionWrapper(
                models.F("taken_at") + models.Value(timedelta(0)), output_field=models.DateTimeField()
            )
            return self.order_by(unindexed.desc(), "-id")
        return self.order_by("-taken_at", "-id")

    def before(self, taken_at, pk):
        """Keyset page boundary: photos that sort after (taken_at, pk) newest-first.

        The redundant ``taken_at <= …`` lets Postgres start the index scan at
        the boundary; with the OR alone it walked from the newest photo
        (22 ms instead of 2 ms at 90% depth of 100k photos: bench/grid_bench.py).
        """
        return self.filter(taken_at__lte=taken_at).filter(
            models.Q(taken_at__lt=taken_at) | models.Q(taken_at=taken_at, id__lt=pk)
        )

    def after(self, taken_at, pk):
        """Photos that sort before (taken_at, pk) newest-first (the newer side)."""
        return self.filter(taken_at__gte=taken_at).filter(
            models.Q(taken_at__gt=taken_at) | models.Q(taken_at=taken_at, id__gt=pk)
        )


class Photo(models.Model):
    """One image, identified by the BLAKE3 hash of its content (see ``gallery.content``).

    The same content found at several paths is one photo with several
    SourceFiles; a moved file keeps its photo and all that hangs off it.
    """

    class Status(models.TextChoices):
        OK = "ok"
        BROKEN = "broken"  # header read, but the pixels cannot be decoded

    # BLAKE3 of the whole content; while ``hash_pending``, the quick hash in its place (gallery.content).
    content_hash = models.CharField(max_length=64, unique=True)
    # BLAKE3 of size, head and tail ("" for photos imported before it existed); not unique.
    quick_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    hash_pending = models.BooleanField(default=False)  # the whole-content hash waits for the thumbnail stage
    file_size = models.BigIntegerField()
    format = models.CharField(max_length=32)  # JPEG, PNG, HEIF, RAW-CR2 …
    mime_type = models.CharField(max_length=64, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)  # as displayed (orientation applied)
    height = models.PositiveIntegerField(null=True, blank=True)
    orientation = models.PositiveSmallIntegerField(default=1)
    frames = models.PositiveIntegerField(default=1)

    # Capture time: the true instant when the file states an offset or the GPS position
    # gives the time zone; otherwise the camera's naive clock stored as if UTC ("floating").
    # taken_at_offset is the UTC offset of the camera's wall clock ("" when floating), as the
    # file states it or (taken_at_zone_source "gps") as taken_at_zone had it at that instant.
    taken_at = models.DateTimeField()
    taken_at_offset = models.CharField(max_length=6, blank=True)  # "+02:00"
    taken_at_source = models.CharField(max_length=40)  # exif:DateTimeOriginal, xmp:…, or a metadata.TakenFrom
    taken_at_zone = models.CharField(max_length=64, blank=True)  # IANA name, "America/Chicago"
    taken_at_zone_source = models.CharField(max_length=10, blank=True)  # a metadata.ZoneFrom

    camera_make = models.CharField(max_length=100, blank=True)
    camera_model = models.CharField(max_length=100, blank=True)
    lens = models.CharField(max_length=200, blank=True)
    focal_length = models.FloatField(null=True, blank=True)  # mm
    aperture = models.FloatField(null=True, blank=True)  # f-number
    exposure_time = models.FloatField(null=True, blank=True)  # seconds
    iso = models.PositiveIntegerField(null=True, blank=True)

    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    altitude = models.FloatField(null=True, blank=True)
    place_city = models.CharField(max_length=200, blank=True)
    place_region = models.CharField(max_length=200, blank=True)
    place_country = models.CharField(max_length=100, blank=True)
    place_country_code = models.CharField(max_length=2, blank=True)

    # What the owner (or their other tools) already wrote into the file or its sidecar.
    title = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    keywords = ArrayField(models.CharField(max_length=500), default=list, blank=True)
    rating = models.SmallIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)  # everything else read, JSON-safe

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OK)
    broken_reason = models.TextField(blank=True)
    thumbnails_at = models.DateTimeField(null=True, blank=True)
    imported_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PhotoQuerySet.as_manager()

    class Meta:
        indexes = [
            # The gallery grid: newest first, keyset pagination on (taken_at, id).
            models.Index(fields=["-taken_at", "-id"], name="photo_taken_id"),
            # The scan looks up photos from before quick hashes by size (gallery.content).
            models.Index(fields=["file_size"], name="photo_size_no_quick_hash", condition=models.Q(quick_hash="")),
        ]

    def __str__(self) -> str:
        return f"Photo {self.pk} ({self.content_hash[:10]})"

    @property
    def local_taken_at(self):
        """Capture time as the camera's wall clock: in its time zone when known, else in its
        UTC offset, else floating (UTC)."""
        zone = self._capture_zone()
        if zone is not None:
            return self.taken_at.astimezone(zone)
        if self.taken_at_offset:
            return self.taken_at.astimezone(timezone(offset_delta(self.taken_at_offset)))
        return self.taken_at.astimezone(timezone.utc)

    @property
    def taken_at_zone_abbreviation(self) -> str:
        """The zone's abbreviation at the capture instant ("CDT", "ACST"), "" without a zone.

        Where the tz database has no letters for a zone (it writes "+04" or "-0930"), the
        offset is spelt out: "UTC+04:00".
        """
        zone = self._capture_zone()
        if zone is None:
            return ""
        local = self.taken_at.astimezone(zone)
        name = local.tzname() or ""
        return name if name[:1].isalpha() else f"UTC{format_offset(local.utcoffset())}"

    def _capture_zone(self):
        """The ZoneInfo of ``taken_at_zone``, or None. Pages that load only ``taken_at`` and
        ``taken_at_offset`` (the grid) get the same wall clock from the offset, without a
        query per photo for the deferred zone."""
        if "taken_at_zone" not in self.__dict__:  # deferred (get_deferred_fields() builds a set of all)
            return None
        return time_zone(self.taken_at_zone)

    @property
    def has_capture_time(self) -> bool:
        """Whether ``taken_at`` says when the photo was taken, not just when its file changed."""
        return TakenFrom.is_capture_time(self.taken_at_source)

    @property
    def place(self) -> str:
        return ", ".join(p for p in (self.place_city, self.place_region, self.place_country) if p)

    @property
    def camera(self) -> str:
        make, model = self.camera_make.strip(), self.camera_model.strip()
        if make and model.lower().startswith(make.split()[0].lower()):
            return model
        return " ".join(p for p in (make, model) if p)

    @property
    def exposure_display(self) -> str:
        if not self.exposure_time:
            return ""
        if self.exposure_time >= 1:
            return f"{self.exposure_time:g} s"
        return f"1/{round(1 / self.exposure_time)} s"

    def present_files(self):
        return self.files.filter(missing=False).select_related("library")


class SourceFileQuerySet(models.QuerySet):
    def under(self, folder: str):
        """Files in ``folder`` or below it, as a byte-order range the (library, folder "C") index serves:
        every name starting with ``folder/`` sorts from ``folder/`` up to, not including, ``folder0``."""
        start, stop = folder + "/", folder + chr(ord("/") + 1)
        return self.alias(folder_c=Collate("folder", "C")).filter(
            models.Q(folder_c=folder) | models.Q(folder_c__gte=start, folder_c__lt=stop)
        )

    def count_under(self, library_id: int, folder: str, *, cap: int) -> int:
        """How many files ``folder`` of a library holds (its sub-folders too), counting no further than ``cap``."""
        files = self.filter(library_id=library_id)
        return (files.under(folder) if folder else files)[:cap].count()


class SourceFile(models.Model):
    """A file found under a library root, whatever became of it.

    Every file the scanner meets gets a row: a photo's file, or a file
    skipped or failed with its reason. Paths are kept as raw bytes so names
    that are not valid UTF-8 survive; ``relpath`` is for display.
    """

    class Outcome(models.TextChoices):
        PHOTO = "photo"
        SKIPPED = "skipped"  # not something we import (video, document, sidecar …)
        FAILED = "failed"  # looked like an image but could not be read

    library = models.ForeignKey(Library, on_delete=models.CASCADE, related_name="files")
    path_bytes = models.BinaryField()
    relpath = models.TextField()
    folder = models.TextField(blank=True)  # display path of the parent folder, "" at the root
    size = models.BigIntegerField()
    mtime_ns = models.BigIntegerField()
    photo = models.ForeignKey(Photo, null=True, blank=True, on_delete=models.SET_NULL, related_name="files")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    missing = models.BooleanField(default=False)
    missing_since = models.DateTimeField(null=True, blank=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(default=djtz.now)

    objects = SourceFileQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["library", "path_bytes"], name="sourcefile_unique_path"),
        ]
        indexes = [
            # Gallery filters by library and folder (EXISTS on photo).
            models.Index(fields=["photo", "library", "folder"], name="sourcefile_photo_lib_folder"),
            # Folder list of a library.
            models.Index(fields=["library", "folder"], name="sourcefile_lib_folder"),
            # A folder and everything below it, as a byte-order range (``SourceFileQuerySet.under``).
            models.Index(models.F("library"), Collate("folder", "C"), name="sourcefile_lib_folder_c"),
            # Jobs page: skipped and failed files with reasons.
            models.Index(fields=["outcome"], name="sourcefile_outcome", condition=~models.Q(outcome="photo")),
        ]

    def __str__(self) -> str:
        return self.relpath

    @property
    def abspath_bytes(self) -> bytes:
        return os.path.join(self.library.root_bytes, bytes(self.path_bytes))

    @property
    def abspath_display(self) -> str:
        return os.path.join(self.library.root, self.relpath)


class PhotoStageQuerySet(models.QuerySet):
    def update(self, **kwargs):
        """``updated_at`` changes with every update, as ``save()`` would change it (the jobs page and
        recovery read it)."""
        kwargs.setdefault("updated_at", djtz.now())
        return super().update(**kwargs)


class PhotoStage(models.Model):
    """Where one photo stands in one processing stage.

    ``stage`` names a stage of the registry (``gallery.stages``); the
    transitions between states are made by ``gallery.engine`` alone.
    """

    class State(models.TextChoices):
        PENDING = "pending"  # needs doing, not yet handed to the worker
        QUEUED = "queued"  # handed to the worker in a task
        RUNNING = "running"  # claimed by a process (``holder``) until ``lease_until``
        DONE = "done"
        FAILED = "failed"  # gave up, with the reason in ``error``
        UNAVAILABLE = "unavailable"  # waits for something outside (e.g. model weights)
        BLOCKED = "blocked"  # a stage it needs failed for this photo

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="stages")
    stage = models.CharField(max_length=40)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    # The model this state is about ("" for stages without one): a different
    # configured model means the work is to be done again.
    model = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    duration = models.FloatField(null=True, blank=True)  # seconds, last attempt
    holder = models.CharField(max_length=200, blank=True)  # the process running it (gallery.holders)
    lease_until = models.DateTimeField(null=True, blank=True)  # after this a silent holder is presumed dead
    updated_at = models.DateTimeField(auto_now=True)

    objects = PhotoStageQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["photo", "stage"], name="photostage_unique")]
        indexes = [
            # Jobs page counts and "what is pending for stage X".
            models.Index(fields=["stage", "state"], name="photostage_stage_state"),
            # Recovery: claims whose holder may have died (few rows: only running ones).
            models.Index(fields=["lease_until"], name="photostage_running_lease",
                         condition=models.Q(state="running")),
        ]

    def __str__(self) -> str:
        return f"{self.photo_id}:{self.stage}={self.state}"
