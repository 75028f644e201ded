"""tagging.learning: a tag learned from accepted and rejected photos, measured on decisions it did not see.

Embeddings here are controlled: random unit vectors with a planted concept,
so what the model should learn is known. None of these tests needs the
database.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tagging.learning import MIN_EACH, PROBE, THRESHOLD, TagModel, fit, predict


def unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def random_photos(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return unit(rng.standard_normal((n, dim)))


def with_concept(rng: np.random.Generator, n: int, direction: np.ndarray, alpha: float) -> np.ndarray:
    """Photos showing the concept: random + alpha * its direction, renormalised."""
    return unit(random_photos(rng, n, len(direction)) + alpha * direction)


def scores(model: TagModel, positives: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
    """Precision and recall of ``model`` at probability 0.5 on labelled photos it has not seen."""
    called_pos = predict(model, positives) >= 0.5
    called_neg = predict(model, negatives) >= 0.5
    tp, fp = called_pos.sum(), called_neg.sum()
    return tp / max(tp + fp, 1), tp / len(positives)


def flip(rng: np.random.Generator, positives: np.ndarray, negatives: np.ndarray, share: float):
    """The owner's mistakes: ``share`` of each side's decisions ends up on the other side."""
    pos_out = rng.random(len(positives)) < share
    neg_out = rng.random(len(negatives)) < share
    return (np.vstack([positives[~pos_out], negatives[neg_out]]),
            np.vstack([negatives[~neg_out], positives[pos_out]]))


# --- learning -----------------------------------------------------------------------------


def test_a_planted_concept_is_learned_and_separates_new_photos():
    rng = np.random.default_rng(1)
    concept = unit(rng.standard_normal(512))
    model = fit(with_concept(rng, 60, concept, 0.3), random_photos(rng, 60, 512))

    assert model is not None
    assert model.precision > 0.9 and model.recall > 0.9
    assert (model.n_positive, model.n_negative) == (60, 60)

    new_pos, new_neg = with_concept(rng, 1000, concept, 0.3), random_photos(rng, 1000, 512)
    precision, recall = scores(model, new_pos, new_neg)
    assert precision > 0.9 and recall > 0.9
    assert predict(model, new_pos).mean() > 0.75 and predict(model, new_neg).mean() < 0.25


def test_a_planted_concept_is_learned_with_many_decisions():
    rng = np.random.default_rng(2)
    concept = unit(rng.standard_normal(512))
    model = fit(with_concept(rng, 1000, concept, 0.2), random_photos(rng, 1000, 512))

    precision, recall = scores(model, with_concept(rng, 2000, concept, 0.2), random_photos(rng, 2000, 512))
    assert model.f1 > 0.95
    assert precision > 0.95 and recall > 0.95


def test_too_few_decisions_on_either_side_learn_nothing():
    rng = np.random.default_rng(3)
    concept = unit(rng.standard_normal(64))
    many_pos, many_neg = with_concept(rng, 50, concept, 1.0), random_photos(rng, 50, 64)

    assert fit(many_pos[: MIN_EACH - 1], many_neg) is None
    assert fit(many_pos, many_neg[: MIN_EACH - 1]) is None
    assert fit(many_pos[:0], many_neg[:0]) is None
    assert fit(many_pos[:MIN_EACH], many_neg[:MIN_EACH]) is not None


def test_folds_never_outnumber_the_smaller_side():
    rng = np.random.default_rng(4)
    concept = unit(rng.standard_normal(64))
    model = fit(with_concept(rng, MIN_EACH, concept, 1.0), random_photos(rng, 40, 64), folds=10)

    assert model is not None and model.n_positive == MIN_EACH
    assert 0.0 <= model.precision <= 1.0 and 0.0 <= model.recall <= 1.0


# --- the two candidates -------------------------------------------------------------------


def similarity_concept(rng: np.random.Generator, n: int, text: np.ndarray, cut: float):
    """Photos whose similarity to ``text`` spreads widely; the tag applies exactly when it is above ``cut``."""
    photos = unit(random_photos(rng, n, len(text)) + 0.35 * rng.standard_normal((n, 1)) * text)
    applies = photos @ text > cut
    return photos[applies], photos[~applies]


def test_a_cut_on_the_text_similarity_is_learned_by_the_threshold():
    rng = np.random.default_rng(5)
    text = unit(rng.standard_normal(512))
    positives, negatives = similarity_concept(rng, 160, text, cut=0.1)
    model = fit(positives, negatives, text_vector=text)

    assert model.compared[THRESHOLD]["f1"] >= model.compared[PROBE]["f1"]
    assert model.kind == THRESHOLD
    assert model.f1 > 0.95
    assert model.bias == pytest.approx(0.1, abs=0.03)  # the cut, on the cosine to the text vector
    assert np.allclose(model.weights, text)

    new_pos, new_neg = similarity_concept(rng, 4000, text, cut=0.1)
    precision, recall = scores(model, new_pos, new_neg)
    assert precision > 0.95 and recall > 0.95


def test_a_concept_unrelated_to_the_text_vector_is_learned_by_the_probe():
    rng = np.random.default_rng(6)
    text = unit(rng.standard_normal(512))
    concept = unit(rng.standard_normal(512))
    concept = unit(concept - (concept @ text) * text)  # nothing to do with the tag's words
    model = fit(with_concept(rng, 80, concept, 0.3), random_photos(rng, 80, 512), text_vector=text)

    assert model.kind == PROBE
    assert model.compared[PROBE]["f1"] > 0.9
    assert model.compared[THRESHOLD]["f1"] < 0.75
    assert model.scale == 1.0
    precision, recall = scores(model, with_concept(rng, 1000, concept, 0.3), random_photos(rng, 1000, 512))
    assert precision > 0.9 and recall > 0.9


def test_without_a_text_vector_the_threshold_uses_the_difference_of_class_means():
    rng = np.random.default_rng(7)
    concept = unit(rng.standard_normal(64))
    positives, negatives = with_concept(rng, 30, concept, 1.5), random_photos(rng, 30, 64)
    model = fit(positives, negatives)

    assert model.compared[THRESHOLD]["f1"] > 0.9
    if model.kind == THRESHOLD:
        direction = unit(positives.mean(axis=0) - negatives.mean(axis=0))
        assert np.allclose(model.weights, direction)


def test_a_threshold_model_calls_the_tag_exactly_at_or_above_its_cut():
    rng = np.random.default_rng(8)
    text = unit(rng.standard_normal(64))
    positives, negatives = similarity_concept(rng, 100, text, cut=0.2)
    model = fit(positives, negatives, text_vector=text)
    assert model.kind == THRESHOLD and model.scale > 0

    photos = random_photos(rng, 500, 64)
    probability = predict(model, photos)
    assert np.all((probability >= 0.5) == (photos @ np.array(model.weights) >= model.bias))
    assert np.all((probability >= 0.0) & (probability <= 1.0))


# --- honesty ------------------------------------------------------------------------------


def test_label_noise_still_gives_a_sensible_model_with_honest_figures():
    rng = np.random.default_rng(9)
    concept = unit(rng.standard_normal(512))
    positives, negatives = flip(rng, with_concept(rng, 400, concept, 0.2), random_photos(rng, 400, 512), 0.1)
    model = fit(positives, negatives)

    # Sensible: against the truth, new photos are still called right.
    clean_pos, clean_neg = with_concept(rng, 3000, concept, 0.2), random_photos(rng, 3000, 512)
    precision, recall = scores(model, clean_pos, clean_neg)
    assert precision > 0.9 and recall > 0.9

    # Honest: the reported figures are what the owner will see on new decisions, mistakes included.
    noisy_pos, noisy_neg = flip(rng, clean_pos, clean_neg, 0.1)
    precision, recall = scores(model, noisy_pos, noisy_neg)
    assert model.precision == pytest.approx(precision, abs=0.05)
    assert model.recall == pytest.approx(recall, abs=0.05)
    assert model.precision < 0.97 and model.recall < 0.97  # the flipped decisions were not fitted away


# --- storage and inputs -------------------------------------------------------------------


@pytest.mark.parametrize("kind", [PROBE, THRESHOLD])
def test_a_stored_model_predicts_exactly_as_the_fitted_one(kind):
    rng = np.random.default_rng(10)
    text = unit(rng.standard_normal(64))
    if kind == THRESHOLD:
        positives, negatives = similarity_concept(rng, 100, text, cut=0.2)
    else:
        concept = unit(rng.standard_normal(64))
        concept = unit(concept - (concept @ text) * text)
        positives, negatives = with_concept(rng, 40, concept, 1.0), random_photos(rng, 40, 64)
    model = fit(positives, negatives, text_vector=text)
    assert model.kind == kind

    stored = json.loads(json.dumps(model.as_dict()))
    restored = TagModel.from_dict(stored)

    assert restored == model
    photos = random_photos(rng, 200, 64)
    assert np.array_equal(predict(restored, photos), predict(model, photos))


def test_fitting_is_deterministic_for_a_seed():
    rng = np.random.default_rng(11)
    concept = unit(rng.standard_normal(64))
    positives, negatives = with_concept(rng, 30, concept, 0.5), random_photos(rng, 30, 64)

    assert fit(positives, negatives, seed=3) == fit(positives, negatives, seed=3)


def test_half_precision_embeddings_are_accepted():
    rng = np.random.default_rng(12)
    concept = unit(rng.standard_normal(512))
    positives, negatives = with_concept(rng, 40, concept, 0.4), random_photos(rng, 40, 512)
    model = fit(positives.astype(np.float16), negatives.astype(np.float16))

    assert model.precision > 0.9 and model.recall > 0.9
    probability = predict(model, positives.astype(np.float16))
    assert probability.dtype == np.float64 and probability.shape == (40,)


def test_embeddings_of_another_size_and_an_empty_text_vector_are_refused():
    rng = np.random.default_rng(13)
    positives, negatives = random_photos(rng, 10, 64), random_photos(rng, 10, 64)

    with pytest.raises(ValueError, match="dimensions"):
        fit(positives, random_photos(rng, 10, 32))
    with pytest.raises(ValueError, match="dimensions"):
        fit(positives, negatives, text_vector=np.ones(32))
    with pytest.raises(ValueError, match="no direction"):
        fit(positives, negatives, text_vector=np.zeros(64))
    model = fit(positives, negatives)
    with pytest.raises(ValueError, match="dimensions"):
        predict(model, random_photos(rng, 3, 32))
