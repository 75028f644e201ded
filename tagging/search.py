"""One search box: CLIP similarity, full text and filters, fused and scored.

``search(q)`` parses the query (``tagging.query``), then runs two
retrievals restricted by the same filters:

* **image** — the CLIP text embedding of the free text against the photos'
  embeddings, through the model's HNSW index (``tagging.vectors``);
* **text** — Postgres full-text search over each photo's weighted document
  (``tagging.documents``: keywords and caption tags, captions, structured
  caption fields, place names, camera, file and folder names);

and fuses the two ranked lists with reciprocal rank fusion. Every result
carries its fused score and the signals that matched.

**Relevance cut-off.** The nearest embeddings are not shown merely for
being nearest. For each query, the similarities of a random sample of the
library's embeddings give the score distribution of *unrelated* photos for
that query, estimated from the low end of the sample (its 10th and 30th
percentiles, so even a query that matches most of the library cannot
inflate it); a semantic match is kept only when it stands out from that
distribution by ``SEMANTIC_MIN_Z`` standard deviations. At 3.0 an unrelated
photo passes with a probability of about 0.1%. Weaker matches are counted,
and shown when the user asks for them (``include_weak``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import numpy as np
from django.conf import settings
from pgvector import HalfVector
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from gallery.models import Photo, SourceFile
from people.models import Face
from ocr.models import PhotoText
from tagging import clip, vectors
from tagging.availability import ModelUnavailable
from tagging.models import Caption, Embedding, PhotoTag, SearchDocument
from tagging.query import ParsedQuery, parse_query

log = logging.getLogger(__name__)

RRF_K = 60  # reciprocal rank fusion constant (Cormack et al.)
CANDIDATES = 200  # per retrieval
# Filters that keep fewer photos than this are ranked exactly instead of through HNSW:
# at 100k photos a one-year filter (6k photos) took 28 ms exact vs 67 ms walking the graph.
EXACT_BELOW = 30_000
# A date filter spanning at most this many years, each with a graph of its own, walks those graphs
# (one query part each); a longer span keeps a large share of the library and walks the whole graph.
YEAR_GRAPHS_AT_MOST = 3
SEMANTIC_MIN_Z = 3.0
BACKGROUND_SAMPLE = 2000
BACKGROUND_TTL = 600  # seconds
NULL_Z30 = 0.5244  # -Φ⁻¹(0.30): the 30th percentile lies 0.524 σ below the mean
NULL_Z_GAP = 1.2816 - 0.5244  # Φ⁻¹(0.90) - Φ⁻¹(0.70): σ between the 10th and 30th percentiles


@dataclass
class SearchResult:
    photo: Photo
    score: float  # fused score, 0–100 (100: first in every list)
    signals: dict[str, float] = field(default_factory=dict)  # "image": similarity, "caption": rank …
    weak: bool = False  # a semantic match below the cut-off, shown on request

    @property
    def signal_names(self) -> list[str]:
        return list(self.signals)

    @property
    def label(self) -> str:
        """What the tile shows: "87.5 · image + caption"."""
        names = " + ".join(self.signals)
        return f"{self.score:.1f} · {names}" if self.score else names

    @property
    def signals_title(self) -> str:
        return ", ".join(f"{name}: {value:.3f}" for name, value in self.signals.items())


@dataclass
class SearchResponse:
    query: ParsedQuery
    results: list[SearchResult]
    hidden_weak: int = 0  # semantic matches below the cut-off, not shown
    threshold: float | None = None  # the similarity a semantic match needed for this query
    notices: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        return self.query.errors


# -- filters -------------------------------------------------------------------------


def _day_start(d) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def _tag_match(tag: str) -> Q:
    """An accepted tag of that name, path or alias, or any tag below it (``tag:italy`` finds Rome)."""
    from tagging import tags

    accepted = PhotoTag.objects.filter(photo=OuterRef("pk"), state=PhotoTag.State.ACCEPTED,
                                       tag_id__in=tags.matching(tag))
    return Q(Exists(accepted))


def _person_match(name: str) -> Q:
    """A face of the person of that name, ignoring case (the unique index on lower(name) finds them)."""
    from people import naming

    return Q(Exists(Face.objects.filter(photo=OuterRef("pk"), person__in=naming.by_name(name).values("pk"))))


def filtered_photos(q: ParsedQuery, *, check_files: bool = True) -> QuerySet:
    """Visible photos that pass every filter of ``q`` (the free text is not applied here).

    ``check_files=False`` leaves out the "has a file on disk" test, which
    costs a scan of the file table inside a retrieval subquery; callers then
    check the few candidates they keep (``Photo.objects.visible()``).
    """
    qs = Photo.objects.visible() if check_files else Photo.objects.filter(status=Photo.Status.OK)
    if q.dates:
        any_date = Q()
        for r in q.dates:
            part = Q()
            if r.start:
                part &= Q(taken_at__gte=_day_start(r.start))
            if r.end:
                part &= Q(taken_at__lt=_day_start(r.end))
            any_date |= part
        qs = qs.filter(any_date)
    if q.after:
        qs = qs.filter(taken_at__gte=_day_start(q.after))
    if q.before:
        qs = qs.filter(taken_at__lt=_day_start(q.before))
    if q.cameras:
        cond = Q()
        for c in q.cameras:
            cond |= Q(camera_make__icontains=c) | Q(camera_model__icontains=c) | Q(lens__icontains=c)
        qs = qs.filter(cond)
    if q.places:
        cond = Q()
        for p in q.places:
            cond |= Q(place_city__icontains=p) | Q(place_region__icontains=p) | Q(place_country__icontains=p)
        qs = qs.filter(cond)
    if q.libraries:
        cond = Q()
        for name in q.libraries:
            cond |= Q(library__name__iexact=name)
        qs = qs.filter(Exists(SourceFile.objects.filter(cond, photo=OuterRef("pk"), missing=False)))
    if q.folders:
        cond = Q()
        for folder in q.folders:
            folder = folder.strip("/")
            cond |= Q(folder=folder) | Q(folder__startswith=folder + "/")
        qs = qs.filter(Exists(SourceFile.objects.filter(cond, photo=OuterRef("pk"), missing=False)))
    for tag in q.tags:
        qs = qs.filter(_tag_match(tag))
    for tag in q.exclude_tags:
        qs = qs.exclude(_tag_match(tag))
    for name in q.persons:
        qs = qs.filter(_person_match(name))
    for word in q.exclude_words:
        qs = qs.exclude(
            Exists(SearchDocument.objects.filter(photo=OuterRef("pk")).extra(
                where=["document @@ plainto_tsquery('simple', %s)"], params=[word]))
        )
    if "gps" in q.has:
        qs = qs.filter(latitude__isnull=False, longitude__isnull=False)
    if "caption" in q.has:
        qs = qs.filter(Exists(Caption.objects.filter(photo=OuterRef("pk"))))
    if "embedding" in q.has:
        qs = qs.filter(Exists(Embedding.objects.filter(photo=OuterRef("pk"))))
    if "keywords" in q.has:
        qs = qs.exclude(keywords=[])
    if "faces" in q.has:  # any face, named or not (Face.photo's index)
        qs = qs.filter(Exists(Face.objects.filter(photo=OuterRef("pk"))))
    if "text" in q.has:  # served by the partial index phototext_has_text
        qs = qs.filter(Exists(PhotoText.objects.filter(photo=OuterRef("pk")).exclude(text="")))
    return qs


def date_condition(q: ParsedQuery) -> tuple[str, list] | None:
    """The query's date filters as SQL on a ``taken_at`` column of its own (embeddings and search
    documents carry their photo's), or None without date filters.

    Never narrower than ``filtered_photos``' dates, which stay in the filter subquery: it only lets a
    retrieval drop rows of other dates before looking their photos up.
    """
    params: list = []

    def between(first, end) -> str:
        bounds = []
        if first:
            bounds.append("taken_at >= %s")
            params.append(_day_start(first))
        if end:
            bounds.append("taken_at < %s")
            params.append(_day_start(end))
        return " AND ".join(bounds) or "TRUE"

    sql = [f"({' OR '.join(f'({between(r.start, r.end)})' for r in q.dates)})"] if q.dates else []
    if q.after or q.before:
        sql.append(between(q.after, q.before))
    return (" AND ".join(sql), params) if sql else None


def _filter_subquery(q: ParsedQuery) -> tuple[str, list] | None:
    """SQL selecting the ids of photos that pass the filters, or None when there are none."""
    if not q.has_filters:
        return None
    sql, params = filtered_photos(q, check_files=False).values("pk").query.sql_with_params()
    return sql, list(params)


# -- image side ---------------------------------------------------------------------


_background: dict[str, tuple[float, int, np.ndarray]] = {}
_background_lock = threading.Lock()


def background_vectors(model_key: str) -> np.ndarray:
    """A random sample of this model's embeddings (cached per process for a few minutes)."""
    now = time.monotonic()
    with _background_lock:
        cached = _background.get(model_key)
        if cached and now - cached[0] < BACKGROUND_TTL:
            return cached[2]
    with connection.cursor() as cur:
        # A Bernoulli sample of about twice the rows needed (no sort of the whole table),
        # read in binary: 2,000 × 512 floats parse in milliseconds, not seconds.
        cur.execute("SELECT reltuples FROM pg_class WHERE relname = 'tagging_embedding'")
        estimate = max(float(cur.fetchone()[0] or 0), 1.0)
        percent = min(100.0, 100.0 * 2 * BACKGROUND_SAMPLE / estimate)
        cur.execute(
            f"SELECT halfvec_send(vector) FROM tagging_embedding TABLESAMPLE BERNOULLI ({percent:.6f}) "
            "WHERE model = %s LIMIT %s",
            [model_key, BACKGROUND_SAMPLE],
        )
        rows = [HalfVector.from_binary(bytes(r[0])).to_numpy().astype(np.float32) for r in cur.fetchall()]
        if len(rows) < 30:  # a tiny or freshly loaded table (reltuples not yet known): take them all
            cur.execute("SELECT halfvec_send(vector) FROM tagging_embedding WHERE model = %s LIMIT %s",
                        [model_key, BACKGROUND_SAMPLE])
            rows = [HalfVector.from_binary(bytes(r[0])).to_numpy().astype(np.float32) for r in cur.fetchall()]
    sample = np.stack(rows) if rows else np.zeros((0, 1), dtype=np.float32)
    with _background_lock:
        _background[model_key] = (now, len(rows), sample)
    return sample


def clear_background() -> None:
    with _background_lock:
        _background.clear()


def similarity_threshold(model_key: str, vector: np.ndarray, min_z: float = SEMANTIC_MIN_Z) -> float | None:
    """The similarity a photo needs to stand out from unrelated ones for this query vector.

    None when the library is too small (< 30 embeddings) to estimate it:
    then nothing is cut.
    """
    sample = background_vectors(model_key)
    if len(sample) < 30 or sample.shape[1] != len(vector):
        return None
    sims = sample @ vector.astype(np.float32)
    # The unrelated photos' distribution, from the low end of the sample: its
    # 10th and 30th percentiles give a normal's mean and spread, so matches
    # up to 70% of the library cannot inflate the estimate.
    q10, q30 = np.percentile(sims, [10, 30])
    spread = max(float(q30 - q10) / NULL_Z_GAP, 1e-3)
    mean = float(q30) + NULL_Z30 * spread
    return mean + min_z * spread


def knn_settings(*, exact: bool) -> dict[str, str]:
    """The settings (``SET LOCAL``) of ``nearest``'s query; :func:`set_local` applies them in one round trip."""
    values = {
        "hnsw.ef_search": str(int(settings.HNSW_EF_SEARCH)),
        # Filtered queries keep scanning the index until enough rows pass the filter.
        "hnsw.iterative_scan": "relaxed_order",
    }
    if exact:
        # One process probing the embedding of each photo the filter keeps (a nested loop over the
        # photo_id index). A 6,000-photo year at 100k photos: 6.9 ms of Postgres CPU, 7.6 ms wall;
        # the planner's own choices: the same loop over two parallel workers, 12 ms wall and 9.7 ms
        # in the leader alone, or without workers a hash join over every embedding, 22 ms.
        values.update({"max_parallel_workers_per_gather": "0", "enable_hashjoin": "off", "enable_mergejoin": "off"})
    return values


def set_local(cur, values: dict[str, str]) -> None:
    """``SET LOCAL`` each of ``values`` (inside a transaction), in one query."""
    cur.execute("SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(values)),
                [part for item in values.items() for part in item])


def nearest(model_key: str, dim: int, vector: np.ndarray, *, limit: int, where: str = "TRUE",
            params: list | None = None, exclude: int | None = None, exact: bool = False,
            years: list[int] | None = None) -> list[tuple[int, float]]:
    """[(photo id, cosine similarity)] nearest first, through the model's HNSW index.

    ``exact`` ranks every row that passes ``where`` instead (the ORDER BY no
    longer matches the index expression): faster than walking the graph
    when a filter keeps only a few thousand photos (bench/search_bench.py).
    ``years`` walks those years' own graphs (``vectors.year_condition``
    matches their predicates), one query part per year, instead of the
    whole library's: for a filter whose photos all fall in those years.
    """
    literal = "[" + ",".join(f"{x:.6g}" for x in vector.tolist()) + "]"
    order = f"(vector::halfvec({int(dim)})) <=> %s::halfvec({int(dim)})"
    parts, args = [], []
    for condition in [vectors.year_condition(y) for y in years] if years else ["TRUE"]:
        parts.append(
            f"SELECT photo_id, 1 - ((vector::halfvec({int(dim)})) <=> %s::halfvec({int(dim)})) AS similarity "
            f"FROM tagging_embedding WHERE model = %s AND {condition} AND {where}"
            + (" AND photo_id <> %s" if exclude is not None else "")
            + f" ORDER BY {'(' + order + ') + 0' if exact else order} LIMIT %s"
        )
        args += [literal, model_key, *(params or [])] + ([exclude] if exclude is not None else []) + [literal, limit]
    sql = parts[0] if len(parts) == 1 else " UNION ALL ".join(f"({part})" for part in parts)
    with transaction.atomic(), connection.cursor() as cur:
        set_local(cur, knn_settings(exact=exact))
        cur.execute(sql, args)
        rows = cur.fetchall()
    rows.sort(key=lambda r: -r[1])  # relaxed_order, and one list per year: sort the few rows we got
    return [(pk, float(sim)) for pk, sim in rows[:limit]]


def date_span(q: ParsedQuery) -> tuple[date | None, date | None]:
    """The days ``[first, end)`` that hold every photo the query's date filters keep (None: open)."""
    first = end = None
    if q.dates:
        starts = [r.start for r in q.dates]
        ends = [r.end for r in q.dates]
        first = None if None in starts else min(starts)
        end = None if None in ends else max(ends)
    if q.after and (first is None or q.after > first):
        first = q.after
    if q.before and (end is None or q.before < end):
        end = q.before
    return first, end


def year_graphs(model_key: str, dim: int, q: ParsedQuery) -> list[int] | None:
    """The years whose own graphs hold every photo the query's dates keep, when each has one and
    they are at most ``YEAR_GRAPHS_AT_MOST``; otherwise None (walk the library's graph)."""
    first, end = date_span(q)
    if first is None or end is None or end <= first:
        return None
    years = list(range(first.year, (end - timedelta(days=1)).year + 1))
    if len(years) > YEAR_GRAPHS_AT_MOST:
        return None
    return years if set(years) <= vectors.indexed_years(model_key, dim) else None


def filtered_rows_estimate(subquery: tuple[str, list]) -> float:
    """The planner's estimate of how many photos the filter subquery selects (no rows are read)."""
    sql, params = subquery
    with connection.cursor() as cur:
        cur.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cur.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return float(plan[0]["Plan"]["Plan Rows"])


def ranks_exactly(subquery: tuple[str, list] | None) -> bool:
    """Whether the photos a filter keeps are few enough (< ``EXACT_BELOW``) to rank them all exactly.

    Counting them reads their rows: at 1,000,000 photos a one-year filter's first 30,000 rows cost
    ≈ 160 ms, four times the graph search itself. The planner's estimate decides when it is far
    above the limit; otherwise the count, which stops at the limit, does.
    """
    if subquery is None:
        return False
    if filtered_rows_estimate(subquery) > 2 * EXACT_BELOW:
        return False
    return filtered_count_at_most(subquery, EXACT_BELOW) <= EXACT_BELOW


def filtered_count_at_most(subquery: tuple[str, list], cap: int) -> int:
    """How many photos the filter subquery selects, counting no further than ``cap`` + 1."""
    sql, params = subquery
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM ({sql} LIMIT %s) AS s", [*params, cap + 1])
        return cur.fetchone()[0]


def current_embedding_model() -> tuple[str, int] | None:
    """(key, dim) of the configured CLIP model's embeddings, if any exist."""
    try:
        key = clip.ClipSpec.parse(settings.CLIP_MODEL).key
    except (ModelUnavailable, ValueError):
        return None
    row = Embedding.objects.filter(model=key).values_list("dim", flat=True).first()
    return (key, row) if row else None


def build_year_graphs() -> dict:
    """The worker's tick: one missing year graph of the configured model, if its library needs one."""
    model = current_embedding_model()
    if model is None:
        return {}
    built = vectors.ensure_year_indexes(*model, at_most=1)
    return {"year_indexes": built} if built else {}


def embed_query_text(text: str) -> np.ndarray:
    return clip.load(settings.CLIP_MODEL).embed_query(text)


# -- text side ----------------------------------------------------------------------

_TSQUERY = "(websearch_to_tsquery('english', %s) || websearch_to_tsquery('simple', %s))"


def text_matches(text: str, *, limit: int, where: str = "TRUE", params: list | None = None) -> list[tuple[int, float, list[str]]]:
    """[(photo id, rank, matched parts)] for documents containing every word of ``text``."""
    # Every matching document is ranked (a common word matches tens of thousands at 1M photos); which
    # parts matched is asked only of the ``limit`` kept, in the outer query.
    sql = f"""
        SELECT photo_id, rank,
               ts_rank('{{0, 0, 0, 1}}', document, q) > 0 AS in_a,
               ts_rank('{{0, 0, 1, 0}}', document, q) > 0 AS in_b,
               ts_rank('{{0, 1, 0, 0}}', document, q) > 0 AS in_c,
               ts_rank('{{1, 0, 0, 0}}', document, q) > 0 AS in_d
        FROM (
            SELECT photo_id, document, q, ts_rank_cd('{{0.1, 0.2, 0.4, 1.0}}', document, q) AS rank
            FROM tagging_searchdocument, (SELECT {_TSQUERY} AS q) AS qq
            WHERE document @@ q AND {where}
            ORDER BY rank DESC, photo_id DESC LIMIT %s
        ) AS kept
        ORDER BY rank DESC, photo_id DESC
    """
    with connection.cursor() as cur:
        cur.execute(sql, [text, text, *(params or []), limit])
        rows = cur.fetchall()
    out = []
    for pk, rank, in_a, in_b, in_c, in_d in rows:
        parts = [name for name, hit in (("tag", in_a), ("caption", in_b), ("description", in_c), ("name", in_d)) if hit]
        out.append((pk, float(rank), parts))
    return out


def _refine_name_signals(results: list[SearchResult], text: str) -> None:
    """Split the "name" signal (weight D) into place, camera and file for the shown results."""
    ids = [r.photo.pk for r in results if "name" in r.signals]
    if not ids:
        return
    sql = f"""
        SELECT p.id,
               to_tsvector('simple', concat_ws(' ', p.place_city, p.place_region, p.place_country)) @@ q,
               to_tsvector('simple', concat_ws(' ', p.camera_make, p.camera_model, p.lens)) @@ q
        FROM gallery_photo p, (SELECT {_TSQUERY} AS q) AS qq WHERE p.id = ANY(%s)
    """
    with connection.cursor() as cur:
        cur.execute(sql, [text, text, ids])
        found = {pk: (place, camera) for pk, place, camera in cur.fetchall()}
    for r in results:
        if "name" not in r.signals:
            continue
        value = r.signals.pop("name")
        place, camera = found.get(r.photo.pk, (False, False))
        if place:
            r.signals["place"] = value
        if camera:
            r.signals["camera"] = value
        if not place and not camera:
            r.signals["file"] = value


def _refine_text_signal(results: list[SearchResult], text: str) -> None:
    """Add the "text" signal (words read in the photo by the OCR stage) to the shown results it explains."""
    ids = [r.photo.pk for r in results if "description" in r.signals]
    if not ids:
        return
    sql = f"""
        SELECT photo_id FROM ocr_phototext, (SELECT {_TSQUERY} AS q) AS qq
        WHERE photo_id = ANY(%s) AND text <> ''
          AND (to_tsvector('english', left(text, 20000)) || to_tsvector('simple', left(text, 20000))) @@ q
    """
    with connection.cursor() as cur:
        cur.execute(sql, [text, text, ids])
        found = {pk for (pk,) in cur.fetchall()}
    for r in results:
        if r.photo.pk in found:
            r.signals["text"] = r.signals["description"]


# -- the search ---------------------------------------------------------------------


def retrieval_filter(q: ParsedQuery) -> tuple[tuple[str, list] | None, str, list]:
    """(filter subquery, WHERE, its parameters) that both retrievals add for the query's filters.

    The dates are checked on the retrieved row first (embeddings and documents carry their photo's
    capture time): only the photos of those dates are looked up in the subquery.
    """
    subquery = _filter_subquery(q)
    where, params = (f"photo_id IN ({subquery[0]})", subquery[1]) if subquery else ("TRUE", [])
    dated = date_condition(q)
    if dated:
        where, params = f"{dated[0]} AND {where}", dated[1] + params
    return subquery, where, params


def image_matches(key: str, dim: int, vector: np.ndarray, q: ParsedQuery, *, subquery: tuple[str, list] | None,
                  where: str, params: list) -> list[tuple[int, float]]:
    """The image side's ``CANDIDATES`` nearest photos that pass the filter: ranked exactly when it keeps
    few, else through the years' own graphs when it lies in them, else through the library's."""
    exact = ranks_exactly(subquery)
    years = None if exact else year_graphs(key, dim, q)
    return nearest(key, dim, vector, limit=CANDIDATES, where=where, params=params, exact=exact, years=years)


def search(q: str | ParsedQuery, *, limit: int = 60, include_weak: bool = False,
           text_vector: np.ndarray | None = None) -> SearchResponse:
    """Run the search box's query. ``text_vector`` skips the CLIP text encoder (benchmarks, tests)."""
    started = time.perf_counter()
    parsed = q if isinstance(q, ParsedQuery) else parse_query(q)
    response = SearchResponse(query=parsed, results=[])
    if parsed.is_empty:
        return response
    subquery, where, params = retrieval_filter(parsed)
    response.timings["parse"] = time.perf_counter() - started

    if not parsed.text:
        # Filters alone: every matching photo, newest first.
        photos = list(filtered_photos(parsed).newest_first()[:limit])
        response.results = [SearchResult(photo=p, score=0.0, signals={"filter": 1.0}) for p in photos]
        response.timings["total"] = time.perf_counter() - started
        return response

    ranked: dict[int, dict] = {}

    def add(pk: int, rank: int, signal: str, value: float) -> None:
        entry = ranked.setdefault(pk, {"score": 0.0, "signals": {}, "weak": False})
        entry["score"] += 1.0 / (RRF_K + rank)
        entry["signals"][signal] = value

    # Image side.
    t = time.perf_counter()
    model = current_embedding_model()
    if model is None:
        response.notices.append("No photo has a CLIP embedding yet: searching captions, tags and names only.")
    else:
        key, dim = model
        try:
            vector = text_vector if text_vector is not None else embed_query_text(parsed.text)
        except ModelUnavailable as exc:
            response.notices.append(exc.message + " Searching captions, tags and names only.")
            vector = None
        response.timings["encode"] = time.perf_counter() - t
        if vector is not None:
            t = time.perf_counter()
            hits = image_matches(key, dim, vector, parsed, subquery=subquery, where=where, params=params)
            response.timings["vector"] = time.perf_counter() - t
            threshold = similarity_threshold(key, vector)
            response.threshold = threshold
            strong = [h for h in hits if threshold is None or h[1] >= threshold]
            weak = [h for h in hits if threshold is not None and h[1] < threshold]
            response.hidden_weak = 0 if include_weak else len(weak)
            for rank, (pk, sim) in enumerate(strong, 1):
                add(pk, rank, "image", sim)
            if include_weak:
                for rank, (pk, sim) in enumerate(weak, len(strong) + 1):
                    add(pk, rank, "image", sim)
                    ranked[pk]["weak"] = "caption" not in ranked[pk]["signals"]

    # Text side.
    t = time.perf_counter()
    for rank, (pk, text_rank, parts) in enumerate(text_matches(parsed.text, limit=CANDIDATES, where=where,
                                                                params=params), 1):
        entry = ranked.setdefault(pk, {"score": 0.0, "signals": {}, "weak": False})
        entry["score"] += 1.0 / (RRF_K + rank)
        for part in parts:
            entry["signals"][part] = text_rank
        entry["weak"] = False
    response.timings["text"] = time.perf_counter() - t

    order = sorted(ranked.items(), key=lambda item: (-item[1]["score"], -item[0]))
    # Candidates whose files are all missing are dropped here (cheap: a few hundred ids); only the
    # photos shown are loaded whole.
    visible = set(Photo.objects.visible().filter(pk__in=[pk for pk, _ in order]).values_list("pk", flat=True))
    order = [item for item in order if item[0] in visible][:limit]
    photos = Photo.objects.in_bulk([pk for pk, _ in order])
    best = 2.0 / (RRF_K + 1)  # first in both lists
    for pk, entry in order:
        if pk in photos:
            response.results.append(SearchResult(
                photo=photos[pk], score=round(100 * entry["score"] / best, 1),
                signals=entry["signals"], weak=entry["weak"],
            ))
    _refine_name_signals(response.results, parsed.text)
    _refine_text_signal(response.results, parsed.text)
    response.timings["total"] = time.perf_counter() - started
    return response


def similar_photos(photo: Photo, *, limit: int = 24, include_weak: bool = False) -> list[SearchResult]:
    """Photos that look like ``photo`` (its embedding of the configured model), most similar first."""
    model = current_embedding_model()
    if model is None:
        return []
    key, dim = model
    emb = Embedding.objects.filter(photo=photo, model=key).first()
    if emb is None:
        return []
    vector = np.asarray(list(emb.vector), dtype=np.float32)
    hits = nearest(key, dim, vector, limit=limit, exclude=photo.pk)
    threshold = None if include_weak else similarity_threshold(key, vector)
    hits = [h for h in hits if threshold is None or h[1] >= threshold]
    photos = Photo.objects.visible().in_bulk([pk for pk, _ in hits])
    return [SearchResult(photo=photos[pk], score=round(100 * sim, 1), signals={"image": sim})
            for pk, sim in hits if pk in photos]


def search_by_image(image, *, limit: int = 60, include_weak: bool = False) -> SearchResponse:
    """Photos that look like an uploaded image."""
    response = SearchResponse(query=parse_query(""), results=[])
    model = current_embedding_model()
    if model is None:
        response.notices.append("No photo has a CLIP embedding yet.")
        return response
    key, dim = model
    try:
        vector = clip.load(settings.CLIP_MODEL).embed_images([image])[0]
    except ModelUnavailable as exc:
        response.notices.append(exc.message)
        return response
    hits = nearest(key, dim, vector, limit=CANDIDATES)
    threshold = similarity_threshold(key, vector)
    response.threshold = threshold
    strong = [h for h in hits if threshold is None or h[1] >= threshold]
    response.hidden_weak = 0 if include_weak else len(hits) - len(strong)
    chosen = hits if include_weak else strong
    photos = Photo.objects.visible().in_bulk([pk for pk, _ in chosen[:limit]])
    response.results = [SearchResult(photo=photos[pk], score=round(100 * sim, 1), signals={"image": sim},
                                     weak=threshold is not None and sim < threshold)
                        for pk, sim in chosen[:limit] if pk in photos]
    return response


