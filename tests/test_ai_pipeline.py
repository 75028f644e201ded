"""The AI stages end to end: import, worker (synchronous), embeddings and captions in Postgres.

Tiny models with random weights, built offline: assertions are about
structure, storage and state, never about what the captions say.
"""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from gallery import engine, holders, libraries, recovery, scans
from gallery.models import Photo, PhotoStage
from tagging import vectors
from tagging.models import Caption, Embedding
from tests.tiny_clip import build_tiny_clip
from tests.tiny_vlm import build_tiny_smolvlm

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    return {
        "clip": build_tiny_clip(base / "clip-a", seed=0),
        "clip_b": build_tiny_clip(base / "clip-b", seed=1, embed_dim=48),
        "vlm": str(build_tiny_smolvlm(base / "smolvlm")),
    }


@pytest.fixture
def ai_settings(settings, tiny_models):
    settings.CLIP_MODEL = tiny_models["clip"]
    settings.CAPTION_BACKEND = "transformers"
    settings.CAPTION_MODEL = tiny_models["vlm"]
    settings.CAPTION_MAX_NEW_TOKENS = 12
    settings.CAPTION_IMAGE_SIZE = 64
    return settings


SOME_FILES = [
    "gps__nikon_p6000_DSCN0010.jpg", "orientation__landscape_6.jpg", "png__rgba_alpha.png",
    "heic__nikon_d5300_gps_xmp_small.heic", "bad__truncated_half.jpg", "nonimage__document.pdf",
]


def import_some(library_dir, names=SOME_FILES):
    for name in names:
        library_dir.add(name)
    library, _ = libraries.add_library(str(library_dir.path))
    return scans.import_library(library, sync=True)


def test_every_importable_photo_gets_an_embedding_and_a_caption(ai_settings, library_dir):
    report = import_some(library_dir)
    assert report.totals["imported"] == 4 and report.totals["failed"] == 1

    out = StringIO()
    call_command("process", "--sync", stdout=out, stderr=StringIO())
    good = Photo.objects.filter(status="ok")
    assert good.count() == 4
    for photo in good:
        emb = Embedding.objects.get(photo=photo)
        assert emb.dim == 32 and len(emb.vector) == 32
        cap = Caption.objects.get(photo=photo)
        assert cap.backend == "transformers" and cap.model == ai_settings.CAPTION_MODEL
        assert cap.prompt_version and cap.raw_text is not None
        assert cap.output_tokens and cap.output_tokens <= 12
        assert cap.prompt_tokens and cap.latency > 0
        assert isinstance(cap.fields, dict) and isinstance(cap.parse_notes, list)
        assert cap.caption_pass == "first", "process runs the quick first pass"
        assert {s.stage: s.state for s in photo.stages.all()} == {
            "thumbnail": "done", "embedding": "done", "caption": "done", "tagscore": "done", "description": "pending"}
    # The broken photo's AI stages are blocked: its thumbnail stage failed, and says why.
    broken = Photo.objects.get(status="broken")
    assert dict(broken.stages.values_list("stage", "state")) == {
        "thumbnail": "failed", "embedding": "blocked", "caption": "blocked", "tagscore": "blocked",
        "description": "blocked"}
    assert "truncated" in broken.stages.get(stage="thumbnail").error.lower()
    assert "embedding: 4 done" in out.getvalue() and "caption: 4 done" in out.getvalue()
    # The full descriptions when asked for by name: one per near-duplicate group, the others reuse it.
    out = StringIO()
    call_command("process", "--sync", "--stage", "description", stdout=out, stderr=StringIO())
    assert "description: 4 done" in out.getvalue()
    full = Caption.objects.filter(photo__in=good, caption_pass="full")
    assert full.count() == 4 and full.filter(source__isnull=True).exists()
    assert all(c.source is None or c.source.photo_id != c.photo_id for c in full)


def test_embeddings_get_a_per_model_hnsw_index(ai_settings, library_dir):
    import_some(library_dir, SOME_FILES[:2])
    engine.run_all_pending(only="embedding")
    emb = Embedding.objects.first()
    name = vectors.index_name(emb.model, emb.dim)
    with connection.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        (indexdef,) = cur.fetchone()
    assert "hnsw" in indexdef and "halfvec_cosine_ops" in indexdef and "halfvec(32)" in indexdef
    # The nearest neighbour of a photo's own vector is that photo.
    with connection.cursor() as cur:
        cur.execute(vectors.nearest_sql(emb.model, emb.dim), [str(list(emb.vector)), str(list(emb.vector)), 1])
        assert cur.fetchone()[0] == emb.photo_id


def test_a_model_change_re_embeds_and_keeps_the_old_vectors_until_then(ai_settings, library_dir, tiny_models):
    import_some(library_dir, SOME_FILES[:3])
    engine.run_all_pending(only="embedding")
    old_key = Embedding.objects.values_list("model", flat=True).distinct().get()

    ai_settings.CLIP_MODEL = tiny_models["clip_b"]
    assert engine.follow_model_change("embedding") == 3
    assert Embedding.objects.filter(model=old_key).count() == 3, "old vectors stay until replaced"
    engine.run_pending("embedding")
    keys = dict(Embedding.objects.values_list("model", "dim").distinct())
    assert len(keys) == 2 and keys[old_key] == 32
    assert sorted(keys.values()) == [32, 48]


def test_reprocess_only_missing_leaves_done_photos_alone(ai_settings, library_dir):
    import_some(library_dir, SOME_FILES[:3])
    engine.run_all_pending(only="embedding")
    assert engine.reprocess("embedding", only_missing=True) == 0
    assert engine.reprocess("embedding") == 3
    out = StringIO()
    call_command("reprocess", "--stage", "caption", "--model", "transformers:" + ai_settings.CAPTION_MODEL,
                 "--sync", stdout=out)
    assert Caption.objects.count() == 3


def test_missing_weights_wait_in_the_unavailable_state_and_nothing_else_stops(settings, library_dir, tmp_path):
    settings.CLIP_MODEL = f"local-dir:{tmp_path}/no-such-model"
    settings.CAPTION_BACKEND = "transformers"
    settings.CAPTION_MODEL = str(tmp_path / "no-such-vlm")
    import_some(library_dir, SOME_FILES[:2])
    results = engine.run_all_pending()
    assert results["thumbnail"]["done"] == 0 and results["embedding"]["done"] == 0  # thumbnails done at import
    states = dict(PhotoStage.objects.values_list("stage", "state").distinct())
    assert states == {"thumbnail": "done", "embedding": "unavailable", "caption": "unavailable",
                      "tagscore": "pending", "description": "pending"}
    [clip_msg, vlm_msg] = sorted(engine.unavailable_messages())
    assert "manage.py models pull" in clip_msg or "manage.py models pull" in vlm_msg
    assert PhotoStage.objects.filter(state="unavailable", attempts=0).count() == 4, "no attempt used"


def test_a_killed_caption_task_is_retried_and_then_completes(ai_settings, library_dir):
    import_some(library_dir, SOME_FILES[:1])
    photo = Photo.objects.get()
    caption = PhotoStage.objects.filter(photo=photo, stage="caption")
    # Held by a live process (this one): recovery leaves it alone.
    caption.update(state="running", attempts=1, holder=holders.current())
    assert recovery.reap_dead_claims() == 0
    assert caption.get().state == "running"
    # As a worker killed mid-task leaves it: claimed by a process that no longer exists.
    caption.update(holder=holders.current().replace(f":{os.getpid()}:", ":999999999:"))
    assert recovery.reap_dead_claims() == 1
    ps = caption.get()
    assert ps.state in ("pending", "queued") and ps.attempts == 1 and "worker stopped" in ps.error
    result = engine.run_pending("caption")
    ps = caption.get()
    assert result["done"] == 1 and ps.state == "done" and ps.attempts == 2 and not ps.holder
    assert Caption.objects.filter(photo=photo).count() == 1


def test_the_photo_page_shows_the_caption_and_who_wrote_it(ai_settings, library_dir, viewer_client):
    import_some(library_dir, SOME_FILES[:1])
    engine.run_all_pending(only="caption")
    photo = Photo.objects.get()
    cap = Caption.objects.get(photo=photo)
    cap.fields = {"caption": "A <b>tower</b> in Tuscany.", "main_subject": "tower", "tags": ["tower"]}
    cap.caption = cap.fields["caption"]
    cap.tags = ["tower"]
    cap.save()
    html = viewer_client.get(f"/photos/{photo.pk}/").content.decode()
    assert "A &lt;b&gt;tower&lt;/b&gt; in Tuscany." in html, "model text is escaped"
    assert ai_settings.CAPTION_MODEL in html and "transformers" in html


def test_the_models_command_lists_configured_models(ai_settings, tmp_path):
    out = StringIO()
    call_command("models", stdout=out)
    assert out.getvalue().count("[present]") == 2
    ai_settings.CLIP_MODEL = f"local-dir:{tmp_path}/gone"
    out = StringIO()
    call_command("models", stdout=out)
    assert "[MISSING]" in out.getvalue() and "manage.py models pull" in out.getvalue()


def test_the_worker_takes_the_whole_corpus_through_every_stage(ai_settings, corpus, sync_tasks,
                                                               django_capture_on_commit_callbacks):
    """Import the corpus and let the (synchronous) worker run the task chain: thumbnails → embeddings → first
    pass → tag scores, then (the machine idle) full descriptions, a batch at a time."""
    ai_settings.FULL_CAPTIONS_PER_HOUR = 1000
    library, _ = libraries.add_library(str(corpus))
    with django_capture_on_commit_callbacks(execute=True):
        report = scans.import_library(library)  # queues thumbnails; each batch queues the next stage
    importable = Photo.objects.filter(status="ok")
    assert importable.count() >= 70, report.totals
    for photo in importable:
        states = dict(photo.stages.values_list("stage", "state"))
        assert states == {"thumbnail": "done", "embedding": "done", "caption": "done", "tagscore": "done",
                          "description": "done"}, (photo, states)
    assert Embedding.objects.filter(photo__in=importable).count() == importable.count()
    for caption_pass in ("first", "full"):
        assert Caption.objects.filter(photo__in=importable, caption_pass=caption_pass).count() == importable.count()
    # Undecodable photos stop at the thumbnail stage, with the decoder's reason; the rest is blocked.
    for photo in Photo.objects.filter(status="broken"):
        assert dict(photo.stages.values_list("stage", "state")) == {
            "thumbnail": "failed", "embedding": "blocked", "caption": "blocked", "tagscore": "blocked",
            "description": "blocked"}
        assert photo.stages.get(stage="thumbnail").error
    assert not PhotoStage.objects.filter(state__in=["pending", "queued", "running"]).exists()


def test_searching_with_an_uploaded_photo_finds_that_photo_first(ai_settings, library_dir, viewer_client, corpus):
    from django.core.files.uploadedfile import SimpleUploadedFile

    import_some(library_dir, SOME_FILES[:4])
    engine.run_all_pending(only="embedding")
    target = Photo.objects.get(files__relpath="orientation__landscape_6.jpg")
    upload = SimpleUploadedFile("query.jpg", (corpus / "orientation__landscape_6.jpg").read_bytes())
    html = viewer_client.post("/search/image/", {"image": upload, "more": "1"}).content.decode()
    import re

    shown = [int(x) for x in re.findall(r'data-photo="(\d+)"', html)]
    assert shown and shown[0] == target.pk

    bad = SimpleUploadedFile("notes.pdf", (corpus / "nonimage__document.pdf").read_bytes())
    response = viewer_client.post("/search/image/", {"image": bad})
    assert response.status_code == 400 and "Cannot search with that file" in response.content.decode()


def test_text_queries_use_the_clip_text_encoder(ai_settings, library_dir):
    from tagging import search

    import_some(library_dir, SOME_FILES[:4])
    engine.run_all_pending(only="embedding")
    response = search.search("a photo", include_weak=True)
    assert "encode" in response.timings and not response.notices
    assert all("image" in r.signals for r in response.results) and len(response.results) == 4
