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
from django.db.models.functions import Lower
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
    # The photo's capture time, copied by database triggers (migration 0008) so that a year's photos
    # can have a search graph of their own (``tagging.vectors.ensure_year_indexes``). Read-only here.
    taken_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["photo", "model"], name="embedding_unique_photo_model")]
        indexes = [
            # "Which photos lack an embedding of model X" (reprocess --only-missing, counts).
            models.Index(fields=["model", "photo"], name="embedding_model_photo"),
        ]

    def __str__(self) -> str:
        return f"{self.model} embedding of photo {self.photo_id}"


class CaptionQuerySet(models.QuerySet):
    def shown_first(self):
        """The caption pages show first: the newest full description, else the newest first pass."""
        full_first = models.Case(models.When(caption_pass=Caption.Pass.FULL, then=models.Value(1)),
                                 default=models.Value(0))
        return self.order_by(full_first.desc(), "-created_at")


class Caption(models.Model):
    """One structured caption of a photo by one model and prompt version.

    ``raw_text`` is exactly what the model said; ``fields`` is what the
    parser made of it (see ``tagging.captions.SCHEMA``). All of it is
    untrusted text: templates keep autoescaping on.

    ``caption_pass`` says which pass wrote it: the *first* pass (one sentence
    and tags, every photo, quickly) or the *full* description (every field,
    later). A full description with a ``source`` was not made for this photo:
    it is its near-duplicate representative's, reused (``source.photo``), and
    it goes when the photo leaves that group.
    """

    class Pass(models.TextChoices):
        FIRST = "first", "first pass"
        FULL = "full", "full description"

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
    caption_pass = models.CharField(max_length=5, choices=Pass.choices, default=Pass.FULL)
    source = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="copies")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CaptionQuerySet.as_manager()

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
            # The full pass's hourly allowance: full descriptions a model wrote in the last hour.
            models.Index(fields=["caption_pass", "updated_at"], name="caption_model_written",
                         condition=models.Q(source__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.backend}:{self.model} {self.caption_pass} caption of photo {self.photo_id}"

    @property
    def is_reused(self) -> bool:
        return self.source_id is not None

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
    # The photo's capture time, copied by the same triggers (migration 0008): a date
    # filter drops a matching document before its photo is looked up. Read-only here.
    taken_at = models.DateTimeField(null=True, blank=True, editable=False)
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


class Representative(models.Model):
    """A near-duplicate and the photo that stands for its group (``tagging.near_duplicates``).

    Only members other than the representative have a row. The group gets one
    full description, the representative's; members reuse it.
    """

    photo = models.OneToOneField(Photo, on_delete=models.CASCADE, primary_key=True, related_name="+")
    representative = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=300)  # the CLIP model whose near-duplicates these are


# -- tags ------------------------------------------------------------------------------


class Tag(models.Model):
    """A tag of the owner's vocabulary, in a hierarchy (``Places/Italy/Rome``).

    A term a model used that matches no tag becomes a *proposed* tag: it is
    suggested, reviewable, and joins the vocabulary when the owner accepts it
    or adds it by hand. Nothing a model says becomes part of the vocabulary
    silently.
    """

    class Status(models.TextChoices):
        ACTIVE = "active"  # in the owner's vocabulary
        PROPOSED = "proposed"  # a model's term, waiting for the owner

    name = models.CharField(max_length=200)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    path = models.CharField(max_length=1000, unique=True)  # "Places/Italy/Rome": the parents' names and its own
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    learn_queued_at = models.DateTimeField(null=True, blank=True)  # a learn task is on its way (one at a time)

    class Meta:
        ordering = ["path"]
        indexes = [
            # tag: filters and lookups by name, any case.
            models.Index(Lower("name"), name="tag_lower_name"),
        ]

    def __str__(self) -> str:
        return self.path

    @property
    def depth(self) -> int:
        return self.path.count("/")

    @property
    def path_parts(self) -> list[str]:
        return self.path.split("/")


class TagAlias(models.Model):
    """Another word for a tag (``kitty`` → ``cat``); ``alias`` is normalised (casefolded)."""

    alias = models.CharField(max_length=200, unique=True)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="aliases")

    def __str__(self) -> str:
        return f"{self.alias} → {self.tag.path}"


class PhotoTag(models.Model):
    """One tag on one photo, with where it came from and what the owner decided.

    A model's tag is a *suggestion* with evidence (the model, the prompt
    version, the CLIP score) until the owner accepts or rejects it. Decisions
    are sticky: a rejected tag never comes back from a re-run, an accepted one
    is never dropped.
    """

    class State(models.TextChoices):
        SUGGESTED = "suggested"
        ACCEPTED = "accepted"
        REJECTED = "rejected"

    class Source(models.TextChoices):
        FILE = "file"  # a keyword in the file or its sidecar
        CAPTION = "caption"  # the vision-language model's tags
        LEARNED = "learned"  # the tag's model learned from the owner's decisions
        OWNER = "owner"  # added by hand

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="photo_tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="photo_tags")
    source = models.CharField(max_length=10, choices=Source.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.SUGGESTED)
    term = models.CharField(max_length=200, blank=True)  # the word the model or file used
    model = models.CharField(max_length=300, blank=True)  # which model suggested it
    prompt_version = models.CharField(max_length=20, blank=True)
    similarity = models.FloatField(null=True, blank=True)  # CLIP: image · tag text, raw cosine
    score = models.FloatField(null=True, blank=True)  # that cosine in σ above the tag's library mean
    learned = models.FloatField(null=True, blank=True)  # probability from the tag's learned model
    decided_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["photo", "tag"], name="phototag_unique")]
        indexes = [
            # Review by tag: a tag's suggestions nearest a score; counts per tag and state.
            models.Index(fields=["tag", "state", "score"], name="phototag_tag_state_score"),
            # The same once the tag has a learned model: nearest probability 0.5.
            models.Index(fields=["tag", "state", "learned"], name="phototag_tag_state_learned"),
            # The photo page and review by photo: a photo's tags by state.
            models.Index(fields=["photo", "state"], name="phototag_photo_state"),
        ]

    def __str__(self) -> str:
        return f"{self.photo_id}:{self.tag_id}={self.state}"

    @property
    def certainty(self) -> float | None:
        """The best evidence there is: the learned probability, else the CLIP score."""
        return self.learned if self.learned is not None else self.score


class TagDecision(models.Model):
    """Every change the owner (or auto-accept) made to a photo's tag: the history, and what undo reverts.

    ``tag_path`` keeps the tag as it was named then; merging repoints ``tag``
    and keeps the row.
    """

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="+")
    tag = models.ForeignKey(Tag, null=True, on_delete=models.SET_NULL, related_name="decisions")
    tag_path = models.CharField(max_length=1000)
    action = models.CharField(max_length=20)  # accept, reject, add, remove, auto-accept, merge
    before = models.CharField(max_length=10, blank=True)  # the link's state before ("" = no link)
    after = models.CharField(max_length=10)
    by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    batch = models.UUIDField()  # one keystroke's decisions: undone together
    undone = models.BooleanField(default=False)

    class Meta:
        indexes = [
            # Undo: the user's newest batch not yet undone.
            models.Index(fields=["by", "undone", "-at"], name="tagdecision_undo"),
        ]


class TagCount(models.Model):
    """How many photos each tag has in each state, kept by Postgres itself.

    Statement-level triggers on ``tagging_phototag`` (migration 0007) add up
    every insert, update and delete, bulk ones included, so the tag list and
    the review inbox read a few hundred rows instead of counting a million
    links on every page (bench/review_bench.py). Never written from Python.
    """

    tag = models.ForeignKey(Tag, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    state = models.CharField(max_length=10, choices=PhotoTag.State.choices)
    n = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tag", "state"], name="tagcount_unique")]
        indexes = [
            # The review inbox: tags with the most suggestions waiting.
            models.Index(fields=["state", "-n"], name="tagcount_state_n"),
        ]


class TagStats(models.Model):
    """How one tag's CLIP text embedding scores across the library (per CLIP model).

    Raw cosine scores are not comparable across tags; ``score`` on a
    PhotoTag is (similarity − mean) / std of this distribution, measured on
    a random sample of the library's photos.
    """

    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="stats")
    clip_model = models.CharField(max_length=300)
    text_vector = models.JSONField()  # the tag's text embedding (prompt templates averaged), L2-normalised
    mean = models.FloatField()
    std = models.FloatField()
    sample_size = models.PositiveIntegerField()
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tag", "clip_model"], name="tagstats_unique")]


class LearnedTag(models.Model):
    """A tag's model learned from the owner's decisions (``tagging.learning``), with its held-out figures."""

    tag = models.OneToOneField(Tag, on_delete=models.CASCADE, related_name="learned")
    clip_model = models.CharField(max_length=300)
    kind = models.CharField(max_length=10)  # probe or threshold
    params = models.JSONField()  # learning.TagModel.as_dict()
    precision = models.FloatField()
    recall = models.FloatField()
    f1 = models.FloatField()
    n_positive = models.PositiveIntegerField()
    n_negative = models.PositiveIntegerField()
    trained_at = models.DateTimeField(auto_now=True)


class OwnerCaption(models.Model):
    """The owner's own caption for a photo. Stored apart from the model's; it wins wherever a
    caption is shown, searched or exported, and no re-run ever overwrites it."""

    photo = models.OneToOneField(Photo, on_delete=models.CASCADE, related_name="owner_caption")
    caption = models.TextField(max_length=2000)
    edited_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    edited_at = models.DateTimeField(auto_now=True)
