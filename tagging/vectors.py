"""One HNSW cosine index per embedding model.

The ``vector`` column has no fixed dimension (models differ), and pgvector
indexes only fixed-dimension expressions, so each model gets a partial
expression index::

    CREATE INDEX … USING hnsw ((vector::halfvec(512)) halfvec_cosine_ops) WHERE model = 'key'

Queries must use the same expression and predicate to use it:
``nearest_sql`` builds that query. The index is built with a large
``maintenance_work_mem`` (DESIGN.md: 64 MB made a 100k build spill to disk
and take 827 s).
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
    if not 1 <= dim <= 4000:
        raise ValueError(f"embedding dimension {dim} is outside halfvec's HNSW limit (4000)")
    name = index_name(model_key, dim)
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
                f"((vector::halfvec({int(dim)})) halfvec_cosine_ops) WHERE model = {_literal(model_key)}"
            )
        finally:
            cur.execute("RESET maintenance_work_mem")
    return True


def nearest_sql(model_key: str, dim: int) -> str:
    """SQL for the ``k`` nearest photos to a query vector ``%s`` (uses the model's index).

    Parameters: the query vector (a halfvec literal or pgvector HalfVector) and ``k``.
    """
    return (
        f"SELECT photo_id, (vector::halfvec({int(dim)})) <=> %s::halfvec({int(dim)}) AS distance "
        f"FROM tagging_embedding WHERE model = {_literal(model_key)} "
        f"ORDER BY (vector::halfvec({int(dim)})) <=> %s::halfvec({int(dim)}) LIMIT %s"
    )
