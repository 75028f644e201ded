"""Search: ranking and fusion on controlled embeddings in the real database, full text, filters, cut-off."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from gallery.models import Library
from tagging import documents, near_duplicates, search, tags, vectors
from tagging.models import Caption, Embedding
from tests.factories import make_photo

pytestmark = pytest.mark.django_db
KEY = "ViT-B-32:laion2b_s34b_b79k"  # the configured model's key (hub specs are keyed by name)
DIM = 32
HTMX = {"HTTP_HX_REQUEST": "true"}


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture(autouse=True)
def _configured_model(settings):
    settings.CLIP_MODEL = KEY
    search.clear_background()
    yield
    search.clear_background()


@pytest.fixture
def clusters(library):
    """Five clusters of 20 photos around orthogonal centres A–E (C, D and E unrelated to A and B)."""
    rng = np.random.default_rng(7)
    centres = {name: unit(np.eye(DIM)[i] * 1.0) for i, name in enumerate("ABCDE")}
    photos = {name: [] for name in centres}
    n = 0
    for name, centre in centres.items():
        for i in range(20):
            vec = unit(centre + rng.normal(0, 0.12, DIM))
            p = make_photo(library, f"{name}/{i}.jpg", taken=datetime(2020, 1, 1 + n % 28, tzinfo=timezone.utc))
            Embedding.objects.create(photo=p, model=KEY, dim=DIM, vector=vec.tolist())
            photos[name].append((p, vec))
            n += 1
    vectors.ensure_index(KEY, DIM)
    documents.refresh_all()
    return centres, photos


def ids(response):
    return [r.photo.pk for r in response.results]


def test_known_nearest_neighbours_come_first_in_similarity_order(clusters):
    centres, photos = clusters
    query = unit(centres["A"] + 0.05 * centres["B"])
    response = search.search("anything", text_vector=query)
    expected = sorted(photos["A"], key=lambda pv: -float(pv[1] @ query))
    assert ids(response)[:20] == [p.pk for p, _ in expected]
    assert all("image" in r.signals for r in response.results[:20])
    assert response.results[0].score > response.results[-1].score


def test_the_cut_off_removes_a_planted_irrelevant_cluster(clusters):
    centres, photos = clusters
    response = search.search("anything", text_vector=centres["A"])
    shown = set(ids(response))
    assert {p.pk for p, _ in photos["A"]} <= shown
    assert not shown & {p.pk for p, _ in photos["C"]}, "the unrelated cluster is cut"
    assert not shown & {p.pk for p, _ in photos["B"]}
    assert response.hidden_weak == 80
    assert response.threshold is not None

    more = search.search("anything", text_vector=centres["A"], include_weak=True, limit=200)
    assert {p.pk for p, _ in photos["C"]} <= set(ids(more))
    assert all(r.weak for r in more.results if r.photo.pk in {p.pk for p, _ in photos["C"]})


def test_the_threshold_adapts_to_each_query(clusters):
    centres, _ = clusters
    between = unit(centres["A"] + centres["B"])
    t_a = search.similarity_threshold(KEY, centres["A"])
    t_ab = search.similarity_threshold(KEY, between)
    assert t_a != t_ab
    # Halfway between two clusters (40% of the library), both are clearly related to the query.
    response = search.search("anything", text_vector=between)
    assert len(response.results) == 40


def test_full_text_finds_captions_tags_places_camera_and_file_names(library):
    lighthouse = make_photo(library, "2019 summer/IMG_0001.jpg", taken=datetime(2019, 7, 1, tzinfo=timezone.utc),
                            place_city="Arezzo", place_region="Tuscany", place_country="Italy",
                            camera_make="NIKON CORPORATION", camera_model="NIKON D70")
    Caption.objects.create(photo=lighthouse, backend="transformers", model="m", prompt_version="v",
                           raw_text="{}", caption="A red lighthouse on a rocky coast.",
                           tags=["lighthouse", "coast"], fields={"scene": "seaside", "objects": ["rocks"]})
    other = make_photo(library, "misc/cat.jpg", taken=datetime(2020, 1, 1, tzinfo=timezone.utc),
                       keywords=["Pets|Cats|Chelsea"])
    tags.import_file_keywords([other.pk])
    suggested = {link.tag.name: link for link in tags.suggest_from_caption(
        lighthouse.pk, ["lighthouse", "coast"], model="transformers:m", prompt_version="v")}
    tags.decide(suggested["lighthouse"].tag, [lighthouse.pk], True)  # "coast" stays a suggestion
    documents.refresh_all()

    def found(q):
        r = search.search(q)
        return {x.photo.pk: x for x in r.results}

    hit = found("lighthouse")[lighthouse.pk]
    assert {"tag", "caption"} <= set(hit.signals)
    weak = found("coast")[lighthouse.pk]
    assert "tag" not in weak.signals and "description" in weak.signals, "a suggestion is weaker evidence"
    assert set(found("arezzo")) == {lighthouse.pk} and "place" in found("arezzo")[lighthouse.pk].signals
    assert "camera" in found("nikon")[lighthouse.pk].signals
    assert "file" in found("summer")[lighthouse.pk].signals
    assert set(found("rocks seaside")) == {lighthouse.pk}
    assert set(found("chelsea")) == {other.pk}
    assert found("submarine") == {}


def test_a_photo_matching_text_and_image_ranks_above_single_signal_matches(clusters):
    centres, photos = clusters
    both, _ = photos["A"][10]
    text_only, _ = photos["C"][0]
    for p in (both, text_only):
        Caption.objects.create(photo=p, backend="t", model="m", prompt_version="v", raw_text="",
                               caption="A kite over the dunes.", tags=["kite"])
        [link] = tags.suggest_from_caption(p.pk, ["kite"], model="t:m", prompt_version="v")
        tags.decide(link.tag, [p.pk], True)
    documents.refresh([both.pk, text_only.pk])
    response = search.search("kite", text_vector=centres["A"])
    assert ids(response)[0] == both.pk
    assert set(response.results[0].signals) >= {"image", "caption", "tag"}
    assert text_only.pk in ids(response), "a keyword match is shown even when its image is unrelated"


@pytest.fixture
def varied(library, tmp_path):
    other_root = tmp_path / "work"
    other_root.mkdir()
    work = Library.objects.create(name="Work", root=str(other_root))
    made = {
        "nikon_2019": make_photo(library, "2019/summer/a.jpg", taken=datetime(2019, 7, 4, 12, tzinfo=timezone.utc),
                                 camera_make="NIKON CORPORATION", camera_model="NIKON D70", latitude=43.4, longitude=11.8,
                                 place_city="Arezzo", place_country="Italy", keywords=["Beach", "Family|Anna"]),
        "canon_2021": make_photo(library, "2021/b.jpg", taken=datetime(2021, 2, 1, tzinfo=timezone.utc),
                                 camera_make="Canon", camera_model="Canon EOS 40D", keywords=["people"]),
        "work_2023": make_photo(work, "c.jpg", taken=datetime(2023, 7, 20, tzinfo=timezone.utc),
                                place_city="New York", place_country="United States"),
    }
    Caption.objects.create(photo=made["canon_2021"], backend="t", model="m", prompt_version="v", raw_text="",
                           caption="", tags=["beach"])
    tags.import_file_keywords([p.pk for p in made.values()])  # as the scan does
    [beach] = tags.suggest_from_caption(made["canon_2021"].pk, ["beach"], model="t:m", prompt_version="v")
    tags.decide(beach.tag, [made["canon_2021"].pk], True)  # the owner agreed with the model
    documents.refresh_all()
    return made


@pytest.mark.parametrize("query, expected", [
    ("2019", {"nikon_2019"}),
    ("2023-07", {"work_2023"}),
    ("2019-07-04", {"nikon_2019"}),
    ("after:2020-01-01", {"canon_2021", "work_2023"}),
    ("before:2021", {"nikon_2019"}),
    ("after:2020 before:2022", {"canon_2021"}),
    ("camera:nikon", {"nikon_2019"}),
    ('camera:"eos 40d"', {"canon_2021"}),
    ("place:arezzo", {"nikon_2019"}),
    ('place:"new york"', {"work_2023"}),
    ("tag:beach", {"nikon_2019", "canon_2021"}),
    ("tag:anna", {"nikon_2019"}),
    ("tag:beach -tag:people", {"nikon_2019"}),
    ("library:Work", {"work_2023"}),
    ("library:family folder:2019", {"nikon_2019"}),
    ("has:gps", {"nikon_2019"}),
    ("2019 2023", {"nikon_2019", "work_2023"}),
])
def test_every_filter_narrows_the_results(varied, query, expected):
    response = search.search(query)
    assert not response.errors, response.errors
    assert {r.photo.pk for r in response.results} == {varied[name].pk for name in expected}


def test_filters_combine_with_free_text(varied):
    response = search.search("arezzo camera:canon")
    assert response.results == []
    response = search.search("arezzo 2019")
    assert [r.photo.pk for r in response.results] == [varied["nikon_2019"].pk]


def test_a_malformed_filter_gives_a_message_not_an_error_page(viewer_client, varied):
    response = viewer_client.get("/search/", {"q": "after:2023-13-01 beach"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "is not a date" in html
    response = viewer_client.get("/search/", {"q": "foo:bar"})
    assert response.status_code == 200 and "unknown filter" in response.content.decode()


def test_similar_photos_are_the_nearest_other_photos_above_the_cut_off(clusters, viewer_client):
    _, photos = clusters
    photo, vec = photos["B"][3]
    similar = search.similar_photos(photo)
    got = [r.photo.pk for r in similar]
    assert photo.pk not in got
    assert set(got) <= {p.pk for p, _ in photos["B"]} and len(got) == 19
    html = viewer_client.get(f"/photos/{photo.pk}/similar/", **HTMX).content.decode()
    assert "<html" not in html and len(re.findall(r'data-photo="(\d+)"', html)) == 19


def test_near_duplicate_groups_are_found_from_embeddings(clusters, viewer_client, library):
    _, photos = clusters
    a, vec = photos["A"][0]
    twin = make_photo(library, "A/0 copy.jpg", taken=a.taken_at)
    Embedding.objects.create(photo=twin, model=KEY, dim=DIM, vector=unit(vec + 0.001).tolist())
    assert near_duplicates.find_pairs(KEY, DIM) >= 1
    assert [sorted([a.pk, twin.pk])] == [g for g in near_duplicates.groups(KEY) if a.pk in g]
    html = viewer_client.get("/duplicates/").content.decode()
    assert f'data-photo="{twin.pk}"' in html


def test_the_search_page_and_its_htmx_fragment(viewer_client, varied):
    page = viewer_client.get("/search/", {"q": "tag:beach"})
    assert page.status_code == 200 and "<html" in page.content.decode()
    fragment = viewer_client.get("/search/", {"q": "tag:beach"}, **HTMX).content.decode()
    assert "<html" not in fragment
    assert set(map(int, re.findall(r'data-photo="(\d+)"', fragment))) == {varied["nikon_2019"].pk,
                                                                          varied["canon_2021"].pk}


def test_the_command_prints_the_same_ranking_as_json(varied):
    out = StringIO()
    call_command("search", "tag:beach -tag:people", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert [r["photo_id"] for r in data["results"]] == [varied["nikon_2019"].pk]
    assert data["results"][0]["path"] == "2019/summer/a.jpg"
    out = StringIO()
    call_command("search", "2019", stdout=out)
    assert "2019/summer/a.jpg" in out.getvalue()


def test_without_embeddings_search_says_so_and_uses_text(varied):
    response = search.search("arezzo")
    assert any("No photo has a CLIP embedding" in n for n in response.notices)
    assert [r.photo.pk for r in response.results] == [varied["nikon_2019"].pk]


def test_the_filter_controls_write_query_syntax_into_a_shareable_url(viewer_client, varied):
    response = viewer_client.get("/search/", {"q": "beach", "year": "2019", "camera": "nikon d70", "gps": "1"})
    assert response.status_code == 302
    assert response["Location"] == "/search/?q=beach+2019+camera%3A%22nikon+d70%22+has%3Agps"
    page = viewer_client.get(response["Location"]).content.decode()
    assert set(map(int, re.findall(r'data-photo="(\d+)"', page))) == {varied["nikon_2019"].pk}


def test_photos_whose_files_are_all_missing_are_not_found(clusters):
    from gallery.models import SourceFile

    centres, photos = clusters
    gone, _ = photos["A"][0]
    SourceFile.objects.filter(photo=gone).update(missing=True)
    for q in ("anything", "anything 2020"):
        response = search.search(q, text_vector=centres["A"])
        assert gone.pk not in ids(response)
        assert len(response.results) == 19


def test_an_upload_larger_than_the_limit_is_refused_before_it_is_spooled(viewer_client, monkeypatch):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tagging import uploads

    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 100_000)
    spooled = []
    real = uploads.LimitedUpload.receive_data_chunk
    monkeypatch.setattr(uploads.LimitedUpload, "receive_data_chunk",
                        lambda self, data, start: spooled.append(len(data)) or real(self, data, start))
    big = SimpleUploadedFile("big.jpg", b"\xff\xd8" + b"0" * 3_000_000)
    response = viewer_client.post("/search/image/", {"image": big})
    assert response.status_code == 413 and "can be searched with" in response.content.decode()
    assert sum(spooled) < 300_000, "the rest of the body was never read into a file"


def test_an_uploaded_image_with_too_many_pixels_is_refused_with_a_reason(viewer_client, settings, tmp_path):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    settings.UPLOAD_MAX_PIXELS = 1_000_000
    data = io.BytesIO()
    Image.new("L", (2000, 2000)).save(data, "PNG")  # a few kilobytes that decode to 4 MP
    response = viewer_client.post("/search/image/", {"image": SimpleUploadedFile("wide.png", data.getvalue())})
    assert response.status_code == 400 and "Cannot search with that file" in response.content.decode()


def test_the_upload_limiter_stops_a_body_without_a_length_at_the_limit(monkeypatch):
    from django.core.files.uploadhandler import StopUpload

    from tagging import uploads

    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 100_000)
    limiter = uploads.LimitedUpload()
    for start in range(0, 100_000, 10_000):
        assert limiter.receive_data_chunk(b"x" * 10_000, start) == b"x" * 10_000
    with pytest.raises(StopUpload):
        limiter.receive_data_chunk(b"x", 100_000)
    assert limiter.too_large


def test_a_huge_description_does_not_stop_the_search_documents(library):
    words = " ".join(f"w{i:07d}" for i in range(300_000))  # ≈ 2.7 MB: a tsvector over Postgres' 1 MB limit
    huge = make_photo(library, "huge.jpg", taken=datetime(2020, 1, 1, tzinfo=timezone.utc), description=words)
    small = make_photo(library, "small.jpg", taken=datetime(2020, 1, 2, tzinfo=timezone.utc), title="lighthouse")
    assert documents.refresh([huge.pk, small.pk]) == 2
    assert {r.photo.pk for r in search.search("w0000042").results} == {huge.pk}
    assert {r.photo.pk for r in search.search("lighthouse").results} == {small.pk}


def test_a_filter_is_ranked_exactly_only_when_it_keeps_few_photos(clusters, monkeypatch):
    """Few photos: every one is ranked. Many: the graph. The planner's estimate spares the count only
    when it is far above the limit; an estimate that is too low is corrected by the count."""
    year_2020 = search._filter_subquery(search.parse_query("2020"))
    year_1990 = search._filter_subquery(search.parse_query("1990"))
    assert search.filtered_rows_estimate(year_2020) >= 1
    assert search.ranks_exactly(None) is False

    monkeypatch.setattr(search, "EXACT_BELOW", 150)
    assert search.ranks_exactly(year_2020) is True  # 100 photos
    monkeypatch.setattr(search, "EXACT_BELOW", 50)
    assert search.ranks_exactly(year_2020) is False  # counted: 100 > 50, whatever the estimate
    assert search.ranks_exactly(year_1990) is True  # none

    def no_count(*args):
        raise AssertionError("counted although the estimate is far above the limit")

    monkeypatch.setattr(search, "filtered_rows_estimate", lambda subquery: 10_000.0)
    monkeypatch.setattr(search, "filtered_count_at_most", no_count)
    assert search.ranks_exactly(year_2020) is False


@pytest.mark.django_db
def test_exact_ranking_runs_in_one_process_without_hashing_every_embedding():
    from django.db import connection, transaction

    names = ["hnsw.iterative_scan", "max_parallel_workers_per_gather", "enable_hashjoin", "enable_mergejoin"]
    with transaction.atomic(), connection.cursor() as cur:
        search.set_local(cur, search.knn_settings(exact=True))
        cur.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(names)), names)
        assert cur.fetchone() == ("relaxed_order", "0", "off", "off")
    assert "enable_hashjoin" not in search.knn_settings(exact=False), "the graph search keeps the planner's choice"


def test_a_filtered_search_ranks_the_same_photos_exactly_or_through_the_graph(clusters, monkeypatch):
    centres, photos = clusters
    exact = ids(search.search("anything 2020", text_vector=centres["A"]))
    monkeypatch.setattr(search, "ranks_exactly", lambda subquery: False)
    graph = ids(search.search("anything 2020", text_vector=centres["A"]))
    assert exact[:20] == graph[:20] and set(exact[:20]) == {p.pk for p, _ in photos["A"]}
