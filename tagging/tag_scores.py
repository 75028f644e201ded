"""The CLIP check of a tag on a photo: how far the photo's image matches the tag's words, on one scale for every tag.

A tag's text embedding is the mean of CLIP text embeddings of a few prompt
templates ("a photo of a dog.", …). Its cosine with a photo's image
embedding is the raw *similarity*; raw similarities are not comparable
across tags (``sunset`` scores higher than ``dog`` on everything), so each
tag's similarity is turned into a *score*: standard deviations above that
tag's mean similarity over a random sample of the library
(``search.background_vectors``). One threshold then means the same for
``dog`` and ``sunset``.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.utils import timezone

from tagging.models import Embedding, PhotoTag, Tag, TagStats
from tagging.vectors import as_array

TEMPLATES = ("a photo of a {}.", "a photo of {}.", "{}")
# The library changes: a tag's distribution is measured again after this long.
STATS_MAX_AGE = timedelta(days=1)
MIN_SAMPLE = 5  # below this many embeddings there is no distribution: scores wait


def text_vectors(model, names: list[str]) -> np.ndarray:
    """One L2-normalised text embedding per tag name (its prompt templates averaged)."""
    if not names:
        return np.zeros((0, model.dim), dtype=np.float32)
    texts = [template.format(name) for name in names for template in TEMPLATES]
    vectors = model.embed_texts(texts).reshape(len(names), len(TEMPLATES), -1).mean(axis=1)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def stats_for(model, tags: list[Tag]) -> dict[int, TagStats]:
    """Each tag's text vector and similarity distribution for ``model``, measured where missing or old."""
    from tagging import search

    have = {s.tag_id: s for s in TagStats.objects.filter(tag__in=tags, clip_model=model.key)}
    fresh_after = timezone.now() - STATS_MAX_AGE
    sample = search.background_vectors(model.key)
    # Old, or measured on a library much smaller than today's.
    stale = [t for t in tags if t.pk not in have or have[t.pk].computed_at < fresh_after
             or len(sample) > 2 * have[t.pk].sample_size]
    if stale:
        if len(sample) < MIN_SAMPLE or sample.shape[1] != model.dim:
            return have
        vectors = text_vectors(model, [t.name for t in stale])
        sims = sample.astype(np.float32) @ vectors.T.astype(np.float32)
        for tag, vector, column in zip(stale, vectors, sims.T):
            have[tag.pk], _ = TagStats.objects.update_or_create(
                tag=tag, clip_model=model.key,
                defaults={"text_vector": [float(x) for x in vector], "mean": float(column.mean()),
                          "std": max(float(column.std()), 1e-4), "sample_size": len(column)},
            )
    return have


def image_vectors(model_key: str, photo_ids: list[int]) -> dict[int, np.ndarray]:
    return {
        pk: as_array(vector)
        for pk, vector in Embedding.objects.filter(photo_id__in=photo_ids, model=model_key).values_list(
            "photo_id", "vector")
    }


def score(link: PhotoTag, image: np.ndarray, stats: TagStats) -> tuple[float, float]:
    """(similarity, score) of one tag on one photo."""
    similarity = float(image @ np.asarray(stats.text_vector, dtype=np.float32))
    return similarity, (similarity - stats.mean) / stats.std
