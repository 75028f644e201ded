"""What the AI pipeline writes about a photo: CLIP embeddings and VLM captions.

Every row records the model that made it. Rows of an earlier model stay
until the new model's row exists, and vectors of two models are never
compared (each model has its own partial HNSW index: ``tagging.vectors``).
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import HalfVectorField

from gallery.models import Photo


class Embedding(models.Model):
    """A CLIP image embedding (L2-normalised), stored as half-precision."""

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="embeddings")
    model = models.CharField(max_length=300)  # tagging.clip.ClipSpec.key
    dim = models.PositiveSmallIntegerField()
    # No fixed dimension: models differ. Search uses a per-model partial
    # expression index, (vector::halfvec(dim)) WHERE model = key.
    vector = HalfVectorField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["photo", "model"], name="embedding_unique_photo_model")]
        indexes = [
            # "Which photos lack an embedding of model X" (reprocess --only-missing, counts).
            models.Index(fields=["model", "photo"], name="embedding_model_photo"),
        ]

    def __str__(self) -> str:
        return f"{self.model} embedding of photo {self.photo_id}"


class Caption(models.Model):
    """One structured caption of a photo by one model and prompt version.

    ``raw_text`` is exactly what the model said; ``fields`` is what the
    parser made of it (see ``tagging.captions.SCHEMA``). All of it is
    untrusted text: templates keep autoescaping on.
    """

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="captions")
    backend = models.CharField(max_length=20)  # mlx, transformers, openai
    model = models.CharField(max_length=300)
    prompt_version = models.CharField(max_length=20)
    raw_text = models.TextField()
    fields = models.JSONField(default=dict)
    caption = models.TextField(blank=True)  # the one-sentence caption, also in fields
    description = models.TextField(blank=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    structured = models.BooleanField(default=True)  # False: the model answered in prose
    parse_notes = models.JSONField(default=list, blank=True)
    latency = models.FloatField(null=True, blank=True)  # seconds
    first_token_latency = models.FloatField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["photo", "backend", "model", "prompt_version"], name="caption_unique_photo_model_prompt"
            )
        ]
        indexes = [
            # The photo page: newest caption of a photo.
            models.Index(fields=["photo", "-created_at"], name="caption_photo_newest"),
            # "Which photos lack a caption by model X".
            models.Index(fields=["model", "photo"], name="caption_model_photo"),
        ]

    def __str__(self) -> str:
        return f"{self.backend}:{self.model} caption of photo {self.photo_id}"

    @property
    def display_fields(self) -> list[tuple[str, str]]:
        """The structured fields worth showing, as (label, text) pairs."""
        f = self.fields or {}
        rows = []
        for key, label in (
            ("main_subject", "Subject"), ("scene", "Scene"), ("activities", "Activities"),
            ("objects", "Objects"), ("people_count", "People"), ("time_of_day", "Time of day"),
            ("lighting", "Light and mood"), ("visible_text", "Text in image"),
        ):
            value = f.get(key)
            if value in (None, "", []):
                continue
            rows.append((label, ", ".join(map(str, value)) if isinstance(value, list) else str(value)))
        return rows


class SearchDocument(models.Model):
    """The full-text document of a photo: what the search box's keyword side matches.

    Weighted: A keywords and caption tags, B title and caption, C
    descriptions and structured caption fields, D place, camera and file
    and folder names. Rebuilt by ``tagging.documents.refresh`` when a
    photo's metadata or caption changes.
    """

    photo = models.OneToOneField(Photo, on_delete=models.CASCADE, primary_key=True, related_name="search_document")
    document = SearchVectorField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # Full-text matches: document @@ tsquery.
            GinIndex(fields=["document"], name="searchdocument_gin"),
        ]


class NearDuplicate(models.Model):
    """Two photos whose embeddings (of one model) are nearly identical."""

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="+")
    other = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=300)
    distance = models.FloatField()  # cosine distance
    found_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "photo", "other"], name="nearduplicate_unique_pair"),
        ]
