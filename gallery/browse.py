"""Queries behind the gallery pages: grid pages, neighbours, filter choices, job counts.

The grid pages with a keyset cursor on (taken_at, id) — never OFFSET — so
page 1,000 costs what page 1 costs, and the (taken_at, id) index serves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.db.models import Count

from gallery import engine, stages
from gallery.models import Library, Photo, PhotoStage, SourceFile

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NO_BOUND = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc)  # later than any photo
MAX_YEARS = 300  # the year list stops here (dates are 1800–2200 anyway)
# A folder with fewer files than this has its photos sorted, not found by walking the date index
# (bench/grid_bench.py: sorting costs about 1 ms per 1,000 photos; the walk can cost 40 ms at 100k).
COLLECT_BELOW = 20_000


@dataclass
class GridFilters:
    library_id: int | None = None
    folder: str = ""
    year: int | None = None

    @classmethod
    def from_query(cls, query) -> GridFilters:
        """Read filters from GET parameters; ValueError with a readable message if malformed."""
        f = cls()
        if query.get("library"):
            try:
                f.library_id = int(query["library"])
            except ValueError:
                raise ValueError("library must be a library id") from None
        f.folder = (query.get("folder") or "").strip().strip("/")
        if f.folder and f.library_id is None:
            raise ValueError("a folder filter needs a library")
        if query.get("year"):
            try:
                f.year = int(query["year"])
            except ValueError:
                raise ValueError("year must be a number like 2023") from None
            if not 1800 <= f.year <= 2200:
                raise ValueError("year must be between 1800 and 2200")
        return f

    def apply(self, qs):
        if self.library_id is not None:
            qs = qs.in_folder(self.library_id, self.folder) if self.folder else qs.in_library(self.library_id)
        if self.year is not None:
            qs = qs.in_year(self.year)
        return qs

    def as_query(self) -> str:
        params = {}
        if self.library_id is not None:
            params["library"] = self.library_id
        if self.folder:
            params["folder"] = self.folder
        if self.year is not None:
            params["year"] = self.year
        return urlencode(params)

    def collect(self) -> bool:
        """Whether the grid's first page should sort this filter's photos rather than walk the date index
        from the newest photo (``PhotoQuerySet.newest_first``): a folder holding fewer than
        ``COLLECT_BELOW`` files. Later pages and a photo's neighbours start their walk at a photo of the
        folder, among its own period: they stay on the index."""
        if not self.folder or self.library_id is None:
            return False
        return SourceFile.objects.count_under(self.library_id, self.folder, cap=COLLECT_BELOW) < COLLECT_BELOW

    @property
    def active(self) -> bool:
        return self.library_id is not None or self.year is not None


def encode_cursor(photo: Photo) -> str:
    delta = photo.taken_at - EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros}_{photo.pk}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        micros, pk = cursor.split("_")
        return EPOCH + timedelta(microseconds=int(micros)), int(pk)
    except (ValueError, OverflowError):
        raise ValueError("malformed page cursor") from None


@dataclass
class GridPage:
    photos: list[Photo]
    next_cursor: str | None
    query: str


def grid_page(filters: GridFilters, *, cursor: str | None = None, size: int | None = None, base=None,
              small_base=None) -> GridPage:
    """One page of the grid; ``base`` narrows it first (a tag's photos, say: any Photo queryset).

    ``small_base``: the same photos as ``base``, collected (``PhotoQuerySet.among``) when there are few:
    the first page sorts them instead of walking the date index from the newest photo.
    """
    size = size or settings.GALLERY_PAGE_SIZE
    narrowing = filters
    if base is None and not cursor and filters.collect():
        # A small folder: its photos with a file present there (so visible, and in the folder), collected.
        small_base = Photo.objects.filter(status=Photo.Status.OK).in_folder(
            filters.library_id, filters.folder, collect=True)
        narrowing = GridFilters(year=filters.year)
    collect = small_base is not None and not cursor
    qs = narrowing.apply(small_base if collect else Photo.objects.visible() if base is None else base)
    if cursor:
        taken_at, pk = decode_cursor(cursor)
        qs = qs.before(taken_at, pk)
    photos = list(
        qs.newest_first(collect=collect).only(
            "id", "content_hash", "taken_at", "taken_at_offset", "width", "height", "thumbnails_at",
            "place_city", "place_country", "title",
        )[: size + 1]
    )
    more = len(photos) > size
    photos = photos[:size]
    return GridPage(photos, encode_cursor(photos[-1]) if more else None, filters.as_query())


def neighbour(photo: Photo, filters: GridFilters, *, newer: bool) -> Photo | None:
    """The photo before (newer) or after (older) ``photo`` in the grid's order."""
    qs = filters.apply(Photo.objects.visible()).exclude(pk=photo.pk)
    if newer:
        return qs.after(photo.taken_at, photo.pk).order_by("taken_at", "id").only("id").first()
    return qs.before(photo.taken_at, photo.pk).newest_first().only("id").first()


def years(filters: GridFilters) -> list[int]:
    """Years that have photos, newest first: one index probe per year (a loose index scan), in one query.

    The ORM builds the probe (the newest photo before a bound, under the grid's filters) once; a
    recursive query runs it again from the start of each year it finds. A grid page shows this list:
    one round trip instead of one per year (20 ORM queries cost more than the page's tiles).
    """
    base = GridFilters(library_id=filters.library_id, folder=filters.folder).apply(
        Photo.objects.filter(status=Photo.Status.OK)
    )
    probe = base.filter(taken_at__lt=_NO_BOUND).order_by("-taken_at").values_list("taken_at", flat=True)[:1]
    sql, params = probe.query.sql_with_params()
    bound = list(params).index(_NO_BOUND)
    pieces = sql.split("%s")
    if len(pieces) != len(params) + 1:  # a literal "%s" in the SQL: never built by these filters
        raise ValueError("cannot place the year bound in the probe's SQL")

    def probe_before(bound_sql: str) -> str:
        return "".join(piece + (bound_sql if i == bound else "%s" if i < len(params) else "")
                       for i, piece in enumerate(pieces))

    others = [p for i, p in enumerate(params) if i != bound]
    year_of = "extract(year FROM ({}) AT TIME ZONE 'UTC')::int"
    recursive = f"""
        WITH RECURSIVE found(year) AS (
            SELECT {year_of.format(probe_before("'infinity'::timestamptz"))}
            UNION ALL
            SELECT {year_of.format(probe_before("make_timestamptz(found.year, 1, 1, 0, 0, 0, 'UTC')"))}
            FROM found WHERE found.year IS NOT NULL
        )
        SELECT year FROM found WHERE year IS NOT NULL LIMIT %s
    """
    with connection.cursor() as cursor:
        cursor.execute(recursive, [*others, *others, MAX_YEARS])
        return [row[0] for row in cursor.fetchall()]


def folders(library_id: int) -> list[str]:
    """Every folder holding photos in a library, parents included, sorted."""
    leaves = (
        SourceFile.objects.filter(library_id=library_id, outcome=SourceFile.Outcome.PHOTO, missing=False)
        .values_list("folder", flat=True)
        .distinct()
    )
    result = set()
    for leaf in leaves:
        parts = leaf.split("/") if leaf else []
        for i in range(1, len(parts) + 1):
            result.add("/".join(parts[:i]))
    return sorted(result)


def library_rows() -> list[dict]:
    rows = []
    counts = {
        (r["library_id"], r["outcome"], r["missing"]): r["n"]
        for r in SourceFile.objects.values("library_id", "outcome", "missing").annotate(n=Count("id")).order_by()
    }
    for lib in Library.objects.all():
        rows.append({
            "library": lib,
            "photos": counts.get((lib.pk, "photo", False), 0),
            "skipped": counts.get((lib.pk, "skipped", False), 0),
            "failed": counts.get((lib.pk, "failed", False), 0),
            "missing": sum(v for (lib_id, _, missing), v in counts.items() if lib_id == lib.pk and missing),
        })
    return rows


def jobs_summary() -> dict:
    """Counts per stage (in the registry's order), ETA, scans under way, and whether to keep polling."""
    rows = []
    for stage, by_state in engine.stage_counts().items():
        total = sum(by_state.values())
        remaining = sum(by_state[s] for s in (PhotoStage.State.PENDING, PhotoStage.State.QUEUED, PhotoStage.State.RUNNING))
        rows.append({
            "spec": stages.get(stage),
            "counts": by_state,
            "total": total,
            "percent": round(100 * by_state[PhotoStage.State.DONE] / total) if total else 100,
            "remaining": remaining,
            "eta": engine.eta_seconds(stage) if remaining else 0,
        })
    scanning = list(Library.objects.filter(scan_state__in=[Library.ScanState.QUEUED, Library.ScanState.SCANNING]))
    outcomes = dict(
        SourceFile.objects.exclude(outcome=SourceFile.Outcome.PHOTO)
        .values_list("outcome").annotate(n=Count("id")).order_by()
    )
    return {
        "stage_rows": rows,
        "scanning": scanning,
        "skipped_files": outcomes.get(SourceFile.Outcome.SKIPPED, 0),
        "failed_files": outcomes.get(SourceFile.Outcome.FAILED, 0),
        "broken_photos": Photo.objects.filter(status=Photo.Status.BROKEN).count(),
        "busy": bool(scanning) or engine.has_work(),
    }
