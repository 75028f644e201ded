"""Date-filtered search at scale: embeddings and search documents carry their photo's capture time,
so a date filter drops other dates' rows before their photos are looked up; busy years get a
partial HNSW index of their own, and a search filtered to such years walks their graphs, finding
what an exact ranking finds."""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from gallery import recovery
from gallery.models import Photo
from tagging import documents, search, vectors
from tagging.models import Embedding, SearchDocument
from tests.factories import make_photo
from tests.test_search import KEY, _configured_model, unit  # noqa: F401  (the configured model, autouse)

pytestmark = pytest.mark.django_db
DIM = 16


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture
def years(library):
    """40 photos in each of 2019, 2020 and 2021 and 5 in 2018, with random embeddings."""
    rng = np.random.default_rng(3)
    photos = {}
    for year, count in ((2018, 5), (2019, 40), (2020, 40), (2021, 40)):
        for i in range(count):
            p = make_photo(library, f"{year}/{i}.jpg", taken=utc(year, 1 + i % 12, 1 + i % 28, 12))
            vec = unit(rng.normal(size=DIM))
            Embedding.objects.create(photo=p, model=KEY, dim=DIM, vector=vec.tolist())
            photos[p.pk] = (year, vec)
    vectors.ensure_index(KEY, DIM)
    return photos


def graph_of(sql: str) -> set[str]:
    """The HNSW indexes the plan of ``sql`` scans, under the search's graph settings."""
    with transaction.atomic(), connection.cursor() as cur:
        search.set_local(cur, search.knn_settings(exact=False))
        cur.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the planner show its index
        cur.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cur.fetchall())
    return {word for word in plan.replace("\n", " ").split() if word.startswith("emb_hnsw_")}


def nearest_sql(run) -> str:
    with CaptureQueriesContext(connection) as ctx:
        run()
    return next(q["sql"] for q in ctx.captured_queries if "<=>" in q["sql"] and "ORDER BY" in q["sql"])


def test_an_embedding_carries_its_photos_capture_time_whoever_writes_it(library):
    photo = make_photo(library, "a.jpg", taken=utc(2019, 5, 1))
    emb = Embedding.objects.create(photo=photo, model=KEY, dim=DIM, vector=[1.0] * DIM)
    emb.refresh_from_db()
    assert emb.taken_at == utc(2019, 5, 1), "set on insert from the photo"

    photo.taken_at = utc(2021, 8, 9)
    photo.save()
    emb.refresh_from_db()
    assert emb.taken_at == utc(2021, 8, 9), "follows the photo's save"

    Photo.objects.filter(pk=photo.pk).update(taken_at=utc(2018, 2, 3))
    emb.refresh_from_db()
    assert emb.taken_at == utc(2018, 2, 3), "and a bulk update"

    Photo.objects.filter(pk=photo.pk).update(taken_at=utc(2020, 1, 1))
    Embedding.objects.filter(pk=emb.pk).update(taken_at=utc(1999, 1, 1))
    emb.refresh_from_db()
    assert emb.taken_at == utc(2020, 1, 1), "a write of the column itself cannot make it disagree"


def test_a_search_document_carries_its_photos_capture_time(library):
    photo = make_photo(library, "a.jpg", taken=utc(2019, 5, 1), title="lighthouse")
    documents.refresh([photo.pk])
    assert SearchDocument.objects.get(photo=photo).taken_at == utc(2019, 5, 1)
    Photo.objects.filter(pk=photo.pk).update(taken_at=utc(2022, 3, 4))
    assert SearchDocument.objects.get(photo=photo).taken_at == utc(2022, 3, 4)
    documents.refresh([photo.pk])  # rebuilt: the upsert keeps it
    assert SearchDocument.objects.get(photo=photo).taken_at == utc(2022, 3, 4)


@pytest.mark.parametrize("text", [
    "2019", "2019-06 2021", "2020-02-29", "after:2019-03 before:2020-02", "2020 after:2020-06",
    "after:2021", "before:2019-01-02", "2018 2021 before:2021-03",
])
def test_the_date_condition_keeps_exactly_the_photos_the_date_filters_keep(library, text):
    for i in range(60):  # one photo every 23 days or so, 2018–2021, at all hours
        make_photo(library, f"{i}.jpg", taken=utc(2018, 1, 1, 5) + (utc(2021, 12, 31) - utc(2018, 1, 1)) * (i / 59))
    q = search.parse_query(text)
    sql, params = search.date_condition(q)
    with connection.cursor() as cur:
        cur.execute(f"SELECT id FROM gallery_photo WHERE {sql}", params)
        kept = {pk for (pk,) in cur.fetchall()}
    assert kept == set(search.filtered_photos(q).values_list("pk", flat=True))
    assert search.date_condition(search.parse_query("camera:nikon lighthouse")) is None


def test_busy_years_get_a_graph_of_their_own_one_per_tick(years, settings):
    assert vectors.busy_years(40) == [2019, 2020, 2021]
    assert vectors.busy_years(200) == [], "a library of 125 photos has no year of 200"
    assert vectors.ensure_year_indexes(KEY, DIM, min_photos=40, at_most=2) == [2019, 2020]
    assert vectors.indexed_years(KEY, DIM) == {2019, 2020}
    assert vectors.ensure_year_indexes(KEY, DIM, min_photos=40) == [2021], "only what is missing"
    assert vectors.ensure_year_indexes(KEY, DIM, min_photos=40) == []
    assert vectors.indexed_years(KEY, DIM) == {2019, 2020, 2021}, "2018 has too few photos"

    settings.YEAR_INDEX_MIN = 5
    assert recovery.recover()["year_indexes"] == [2018], "the worker's tick builds a missing one"
    assert "year_indexes" not in recovery.recover()
    settings.YEAR_INDEX_MIN = 0
    assert vectors.ensure_year_indexes("another:model", DIM) == [], "0 builds none"


def test_a_year_graph_holds_exactly_that_years_embeddings(years):
    vectors.ensure_year_indexes(KEY, DIM, min_photos=40)
    name = vectors.year_index_name(KEY, DIM, 2020)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_get_indexdef(%s::regclass)", [name])
        definition = cur.fetchone()[0]
    assert f"model)::text = '{KEY}'" in definition
    assert "taken_at >= '2020-01-01 00:00:00+00'" in definition and "taken_at < '2021-01-01 00:00:00+00'" in definition


@pytest.mark.parametrize("text, span", [
    ("2020", (date(2020, 1, 1), date(2021, 1, 1))),
    ("2019-06 2021", (date(2019, 6, 1), date(2022, 1, 1))),
    ("after:2019-03 before:2020-02", (date(2019, 3, 1), date(2020, 2, 1))),
    ("2020 after:2020-06", (date(2020, 6, 1), date(2021, 1, 1))),
    ("after:2019", (date(2019, 1, 1), None)),
    ("camera:nikon", (None, None)),
])
def test_the_date_span_holds_every_day_the_filters_keep(text, span):
    assert search.date_span(search.parse_query(text)) == span


def test_a_one_year_search_walks_that_years_graph_and_finds_what_exact_ranking_finds(years, monkeypatch):
    vectors.ensure_year_indexes(KEY, DIM, min_photos=40)
    query = unit(np.random.default_rng(9).normal(size=DIM))
    monkeypatch.setattr(search, "ranks_exactly", lambda subquery: True)
    exact = [r.photo.pk for r in search.search("anything 2020", text_vector=query, include_weak=True).results]
    monkeypatch.setattr(search, "ranks_exactly", lambda subquery: False)

    def run():
        return search.search("anything 2020", text_vector=query, include_weak=True)

    graph = [r.photo.pk for r in run().results]
    assert graph == exact and len(graph) == 40
    assert {years[pk][0] for pk in graph} == {2020}
    assert graph_of(nearest_sql(run)) == {vectors.year_index_name(KEY, DIM, 2020)}


def test_a_span_of_indexed_years_walks_each_years_graph(years, monkeypatch):
    vectors.ensure_year_indexes(KEY, DIM, min_photos=40)
    query = unit(np.random.default_rng(10).normal(size=DIM))

    def run():
        return search.search("anything after:2019-07 before:2021-03", text_vector=query, include_weak=True)

    monkeypatch.setattr(search, "ranks_exactly", lambda subquery: True)
    exact = [r.photo.pk for r in run().results]
    monkeypatch.setattr(search, "ranks_exactly", lambda subquery: False)
    found = [r.photo.pk for r in run().results]
    taken = {p.pk: p.taken_at for p in Photo.objects.filter(pk__in=years)}
    kept = {pk for pk in years if utc(2019, 7, 1) <= taken[pk] < utc(2021, 3, 1)}
    assert found == exact and set(found) <= kept and len(found) == min(60, len(kept))
    assert graph_of(nearest_sql(run)) == {vectors.year_index_name(KEY, DIM, y) for y in (2019, 2020, 2021)}


def test_a_span_reaching_a_year_without_a_graph_walks_the_librarys(years, monkeypatch):
    vectors.ensure_year_indexes(KEY, DIM, min_photos=40)  # not 2018
    monkeypatch.setattr(search, "ranks_exactly", lambda subquery: False)
    parsed = search.parse_query("anything after:2018-06 before:2019-06")
    assert search.year_graphs(KEY, DIM, parsed) is None
    assert search.year_graphs(KEY, DIM, search.parse_query("after:2019")) is None, "open-ended"
    assert search.year_graphs(KEY, DIM, search.parse_query("2019 2020 2021")) == [2019, 2020, 2021]
    monkeypatch.setattr(search, "YEAR_GRAPHS_AT_MOST", 2)
    assert search.year_graphs(KEY, DIM, search.parse_query("2019 2020 2021")) is None, "too many parts"

    query = unit(np.random.default_rng(11).normal(size=DIM))
    sql = nearest_sql(lambda: search.search(parsed.text + " after:2018-06 before:2019-06", text_vector=query))
    assert graph_of(sql) == {vectors.index_name(KEY, DIM)}


def test_a_failing_upkeep_does_not_stop_the_tick(monkeypatch):
    def broken():
        raise RuntimeError("index build refused")

    monkeypatch.setattr(recovery, "ON_TICK", [broken, lambda: {"ran": True}])
    result = recovery.recover()
    assert result["ran"] is True and "queued" in result


def test_the_migration_fills_in_existing_embeddings_and_keeps_their_graph(library):
    import importlib
    from types import SimpleNamespace

    migration = importlib.import_module("tagging.migrations.0008_capture_time_on_embeddings_and_documents")
    photo = make_photo(library, "old.jpg", taken=utc(2017, 6, 1))
    Embedding.objects.create(photo=photo, model=KEY, dim=DIM, vector=[1.0] * DIM)
    vectors.ensure_index(KEY, DIM)
    with connection.cursor() as cur:  # as before the migration: no time on the row
        cur.execute("ALTER TABLE tagging_embedding DISABLE TRIGGER tagging_embedding_taken_at")
        cur.execute("UPDATE tagging_embedding SET taken_at = NULL")
        cur.execute("ALTER TABLE tagging_embedding ENABLE TRIGGER tagging_embedding_taken_at")
        cur.execute("SELECT pg_get_indexdef(%s::regclass)", [vectors.index_name(KEY, DIM)])
        graph = cur.fetchone()[0]

    migration.backfill(None, SimpleNamespace(connection=connection))

    assert Embedding.objects.get(photo=photo).taken_at == utc(2017, 6, 1)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_get_indexdef(%s::regclass)", [vectors.index_name(KEY, DIM)])
        assert cur.fetchone()[0] == graph, "the graph is built again as it was"
