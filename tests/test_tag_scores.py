"""The CLIP check of suggested tags (tagging.tag_scores, the tagscore stage) and learning tags from decisions (tagging.learn)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from gallery import engine, libraries, scans
from tagging import learn, search, tag_scores, tags
from tagging.models import Embedding, LearnedTag, PhotoTag, TagDecision, TagStats
from tests.factories import make_photo
from tests.fake_vlm_server import FakeVLMServer
from tests.tiny_clip import build_tiny_clip

pytestmark = pytest.mark.django_db
DIM = 16
KEY = "controlled"


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


class ControlledClip:
    """A stand-in for a loaded CLIP model whose text vectors the test chooses (the maths, not open_clip)."""

    key = KEY
    dim = DIM

    def __init__(self, texts: dict[str, np.ndarray]):
        self.texts = texts

    def embed_texts(self, texts):
        return np.stack([self.texts[t.split()[-1].rstrip(".")] for t in texts])


@pytest.fixture
def library_of_vectors(library):
    """60 photos: 10 near direction 0 ("dog"), the rest spread out; "sunset" is close to everything."""
    rng = np.random.default_rng(3)
    base = unit(np.ones(DIM))
    photos, vectors = [], {}
    for i in range(60):
        v = unit(base + rng.normal(0, 0.5, DIM) + (3.0 * np.eye(DIM)[0] if i < 10 else 0))
        p = make_photo(library, f"v{i}.jpg", taken=datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(days=i))
        Embedding.objects.create(photo=p, model=KEY, dim=DIM, vector=v.tolist())
        photos.append(p)
        vectors[p.pk] = v
    search.clear_background()
    yield photos, vectors
    search.clear_background()


def test_scores_are_normalised_per_tag_so_one_threshold_means_the_same(library_of_vectors):
    photos, vectors = library_of_vectors
    dog, sunset = tags.for_path(["dog"]), tags.for_path(["sunset"])
    model = ControlledClip({"dog": unit(np.eye(DIM)[0]), "sunset": unit(np.ones(DIM))})
    stats = tag_scores.stats_for(model, [dog, sunset])
    assert stats[sunset.pk].mean > stats[dog.pk].mean + 0.2, "raw similarity to 'sunset' is high for every photo"
    z = {name: [tag_scores.score(None, vectors[p.pk], stats[tag.pk])[1] for p in photos]
         for name, tag in (("dog", dog), ("sunset", sunset))}
    assert min(z["dog"][:10]) > 1.0 > max(z["dog"][10:]), "the ten dogs stand out on the dog scale"
    assert max(z["sunset"]) < 3.0, "nothing stands out as a sunset, although its raw scores are higher"
    assert TagStats.objects.get(tag=dog, clip_model=KEY).sample_size == 60


def test_the_learned_model_learns_a_planted_concept_and_suggests_what_the_model_missed(library_of_vectors, settings):
    photos, vectors = library_of_vectors
    settings.CLIP_MODEL = KEY
    settings.TAG_LEARNED_MIN_PROBABILITY = 0.6
    dog = tags.for_path(["dog"])
    # The owner decided on 16 photos: six dogs accepted, ten others rejected; two dogs had no suggestion.
    for p in photos[:8] + photos[20:30]:
        tags.suggest_from_caption(p.pk, ["dog"], model="m", prompt_version="1")
    tags.decide(dog, [p.pk for p in photos[:6]], True)
    tags.decide(dog, [p.pk for p in photos[20:30]], False)
    dog.refresh_from_db()
    assert dog.learn_queued_at is not None, "enough decisions: the worker was asked to learn the tag"
    assert learn.queue_if_due([dog.pk]) == [], "one learn task at a time"
    learned = learn.learn_tag(dog.pk, model_key=KEY)
    assert learned.kind in ("probe", "threshold") and learned.n_positive == 6 and learned.n_negative == 10
    assert learned.precision >= 0.8 and learned.recall >= 0.8
    pending = PhotoTag.objects.filter(tag=dog, state="suggested", source="caption")
    assert {pt.photo_id: pt.learned > 0.5 for pt in pending} == {photos[6].pk: True, photos[7].pk: True}
    missed = set(PhotoTag.objects.filter(tag=dog, source="learned").values_list("photo_id", flat=True))
    assert {photos[8].pk, photos[9].pk} <= missed, "the dogs no model suggested are proposed"
    assert not missed & {p.pk for p in photos[30:]}
    assert learn.queue_if_due([dog.pk]) == [], "nothing new to learn from"


def test_the_tag_page_shows_the_learned_models_held_out_figures(library_of_vectors, viewer_client):
    dog = tags.for_path(["dog"])
    LearnedTag.objects.create(tag=dog, clip_model=KEY, kind="probe", params={}, precision=0.91, recall=0.84,
                              f1=0.87, n_positive=20, n_negative=30)
    html = viewer_client.get("/tags/dog/").content.decode()
    assert "precision 0.91, recall 0.84" in html and "20 accepted and 30 rejected" in html


@pytest.fixture
def tiny_clip(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("score-clip") / "clip", seed=5)


def test_the_tagscore_stage_scores_suggestions_with_a_real_clip_model(library_dir, settings, tiny_clip):
    for name in ("bundled_photo__coffee.jpg", "bundled_photo__flower.jpg", "bundled_photo__cat_chelsea.jpg",
                 "orientation__landscape_6.jpg", "png__rgb_hopper.png", "bundled_photo__rocket_launch.jpg"):
        library_dir.add(name)
    settings.CLIP_MODEL = tiny_clip
    settings.TAG_AUTO_ACCEPT = -100.0  # everything clears it: only tags of the vocabulary are accepted
    tags.for_path(["dog"]), tags.for_path(["Places", "Beach"])
    with FakeVLMServer(models=["qwen2.5vl:3b"]) as server:
        settings.CAPTION_BACKEND, settings.CAPTION_MODEL = "openai", "qwen2.5vl:3b"
        settings.OPENAI_BASE_URL, settings.OPENAI_RETRIES = server.url, 0
        library, _ = libraries.add_library(str(library_dir.path))
        scans.import_library(library, sync=True)
        search.clear_background()
        results = engine.run_all_pending()
    assert results["tagscore"]["done"] == 6
    links = PhotoTag.objects.filter(source="caption")
    assert links.count() == 6 * 5, "the fake model's five tags on every photo"
    assert not links.filter(score__isnull=True).exists() and not links.filter(similarity__isnull=True).exists()
    for pt in links:
        assert -1.0 <= pt.similarity <= 1.0
    assert TagStats.objects.filter(clip_model__contains="local-dir").count() == 5
    accepted = set(links.filter(state="accepted").values_list("tag__path", flat=True))
    assert accepted == {"dog", "Places/Beach"}, "proposed tags wait for the owner even above the setting"
    assert TagDecision.objects.filter(action="auto-accept").count() == 12
    # A caption done again sends the photo's tag scores back to be done again.
    photo_id = links.first().photo_id
    engine.refresh_dependents(stages_get("caption"), [photo_id])
    assert engine.stage_counts()["tagscore"]["pending"] == 1


def stages_get(name):
    from gallery import stages

    return stages.get(name)
