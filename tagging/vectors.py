"""One HNSW cosine index per embedding model.

The ``vector`` column has no fixed dimension (models differ), and pgvector
indexes only fixed-dimension expressions, so each model gets a partial
expression index::

    CREATE INDEX … USING hnsw ((vector::halfvec(512)) halfvec_cosine_ops) WHERE model = 'key'

Queries must use the same expression and predicate to use it:
``nearest_sql`` builds that query. The index is built with a large
``maintenance_work_mem`` (DESIGN.md: 64 MB made a 100k build spill to disk
and take 827 s).

A year with many photos also gets a graph of its own, a partial index on the
capture time the triggers copy beside each embedding::

    … WHERE model = 'key' AND taken_at >= '2018-01-01 00:00:00+00' AND taken_at < '2019-01-01 00:00:00+00'

A search filtered to that year walks 64,000 photos' graph instead of
filtering a walk through a million (bench/search_bench.py). The worker's
tick builds them (``search.build_year_graphs``), one per tick, for years with at least
``SHOEBOX_YEAR_INDEX_MIN`` photos; fewer are ranked exactly without an index.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import connection


def as_array(vector):
    """A stored embedding (pgvector's HalfVector, or a list) as a float32 numpy array."""
    import numpy as np

    if hasattr(vector, "to_numpy"):
        return vector.to_numpy().astype(np.float32)
    return np.asarray(vector, dtype=np.float32)


def index_name(model_key: str, dim: int) -> str:
    digest = hashlib.blake2b(f"{model_key}|{dim}".encode(), digest_size=6).hexdigest()
    return f"emb_hnsw_{digest}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ensure_index(model_key: str, dim: int) -> bool:
    """Create the model's HNSW index if it does not exist. Returns True if it was created."""
    return _create(index_name(model_key, dim), dim, f"model = {_literal(model_key)}")


def _create(name: str, dim: int, predicate: str) -> bool:
    if not 1 <= dim <= 4000:
        raise ValueError(f"embedding dimension {dim} is outside halfvec's HNSW limit (4000)")
    with connection.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [name])
        if cur.fetchone():
            return False
        # Inside a transaction with deferred foreign-key checks still pending
        # (tests; a caller's atomic block) Postgres refuses CREATE INDEX: fire them first.
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute(f"SET maintenance_work_mem = '{int(settings.HNSW_BUILD_MEMORY_MB)}MB'")
        try:
            cur.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON tagging_embedding USING hnsw "
                f"((vector::halfvec({int(dim)})) halfvec_cosine_ops) WHERE {predicate}"
            )
        finally:
            cur.execute("RESET maintenance_work_mem")
    return True


# -- a graph per busy year ------------------------------------------------------------

# Years Postgres' timestamps and this literal format both hold.
FIRST_YEAR, LAST_YEAR = 1, 9998


def year_index_name(model_key: str, dim: int, year: int) -> str:
    return f"{index_name(model_key, dim)}_y{int(year)}"


def year_condition(year: int) -> str:
    """The capture-time range of one (UTC) year, exactly as the year's index predicate writes it."""
    year = int(year)
    return (f"taken_at >= '{year:04d}-01-01 00:00:00+00' "
            f"AND taken_at < '{year + 1:04d}-01-01 00:00:00+00'")


def indexed_years(model_key: str, dim: int) -> set[int]:
    """The years that have a graph of their own for this model."""
    prefix = index_name(model_key, dim) + "_y"
    with connection.cursor() as cur:
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'tagging_embedding' "
                    "AND starts_with(indexname, %s)", [prefix])
        names = [row[0] for row in cur.fetchall()]
    return {int(name[len(prefix):]) for name in names if name[len(prefix):].isdigit()}


def busy_years(min_photos: int) -> list[int]:
    """Years (UTC) with at least ``min_photos`` photos, busiest first (counted along the taken_at index)."""
    with connection.cursor() as cur:
        # Most libraries have too few photos for any year to qualify: a count that stops there says so.
        cur.execute("SELECT count(*) FROM (SELECT 1 FROM gallery_photo LIMIT %s) AS s", [min_photos])
        if cur.fetchone()[0] < min_photos:
            return []
        cur.execute(
            "SELECT extract(year FROM taken_at AT TIME ZONE 'UTC')::int AS y FROM gallery_photo "
            "WHERE taken_at IS NOT NULL GROUP BY y HAVING count(*) >= %s ORDER BY count(*) DESC, y",
            [min_photos],
        )
        return [y for (y,) in cur.fetchall() if FIRST_YEAR <= y <= LAST_YEAR]


def ensure_year_indexes(model_key: str, dim: int, *, min_photos: int | None = None,
                        at_most: int | None = None) -> list[int]:
    """Build the missing graphs of years with at least ``min_photos`` photos (at most ``at_most`` of
    them, busiest first). Returns the years built."""
    min_photos = settings.YEAR_INDEX_MIN if min_photos is None else min_photos
    if min_photos <= 0:
        return []
    have = indexed_years(model_key, dim)
    built = []
    for year in busy_years(min_photos):
        if at_most is not None and len(built) >= at_most:
            break
        if year not in have and _create(year_index_name(model_key, dim, year), dim,
                                        f"model = {_literal(model_key)} AND {year_condition(year)}"):
            built.append(year)
    return built


def nearest_sql(model_key: str, dim: int) -> str:
    """SQL for the ``k`` nearest photos to a query vector ``%s`` (uses the model's index).

    Parameters: the query vector (a halfvec literal or pgvector HalfVector) and ``k``.
    """
    return (
        f"SELECT photo_id, (vector::halfvec({int(dim)})) <=> %s::halfvec({int(dim)}) AS distance "
        f"FROM tagging_embedding WHERE model = {_literal(model_key)} "
        f"ORDER BY (vector::halfvec({int(dim)})) <=> %s::halfvec({int(dim)}) LIMIT %s"
    )
