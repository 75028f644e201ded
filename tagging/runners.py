"""The AI stages: what "embedding", "caption", "tagscore" and "description" mean for a batch of photos.

Captions come in two passes. The *caption* stage is the first pass: one
sentence and a few tags for every photo, with a short prompt and a small token
budget, so search and review work within a day. The *description* stage is the
full structured caption, run as the machine allows (``SHOEBOX_FULL_CAPTIONS_PER_HOUR``,
only while no cheaper work waits, or at once for a photo someone opens), and
once per near-duplicate group: the group's representative is described, the
others reuse its description with provenance (``Caption.source``).

Each runner loads its model (once per process: ``clip.load`` and
``vlm.get_backend`` cache them), does its own work on a claimed
:class:`gallery.engine.Batch` and saves each photo's output through it.
Claiming, attempts, timing, failure records and handing photos on are the
engine's (``gallery.engine``). A model whose weights are missing raises
``ModelUnavailable``: the batch waits in the *unavailable* state.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models.signals import post_delete

from gallery import stages
from gallery.imaging import open_upright
from gallery.originals import original_path
from gallery.runners import THUMBNAIL
from gallery.thumbnails import thumbnail_path
from tagging import captions, clip, documents, near_duplicates, prompt, tag_scores, tags, vectors
from tagging.availability import ModelUnavailable
from tagging.models import Caption, Embedding, PhotoTag, Representative, TagDecision

log = logging.getLogger(__name__)

EMBEDDING = "embedding"
CAPTION = "caption"  # the first pass
TAG_SCORE = "tagscore"
DESCRIPTION = "description"  # the full structured caption
CAPTION_BACKENDS = ("mlx", "transformers", "openai")
MAX_INT = 2**31 - 1  # Postgres integer


def configured_clip_model() -> str:
    return settings.CLIP_MODEL


def configured_caption_model() -> str:
    return f"{settings.CAPTION_BACKEND}:{settings.CAPTION_MODEL}"


def image_source(photo, *, min_edge: int) -> bytes | str:
    """The cheapest good input for a model needing ``min_edge`` px: the smallest rendered
    thumbnail at least that large, else the original.

    CLIP at 224 px reads the 400 px grid thumbnail: 94% of the bare model's
    throughput instead of 73% from 12 MP originals, at 39.7 dB PSNR of model
    input (bench/clip_bench.py).
    """
    for name, edge in sorted(settings.THUMBNAIL_SIZES.items(), key=lambda item: item[1]):
        if edge >= min_edge:
            thumb = thumbnail_path(settings.THUMBNAIL_DIR, photo.content_hash, name)
            if thumb.is_file():
                return str(thumb)
    return original_path(photo)


# -- embeddings ------------------------------------------------------------------


def embed(batch) -> None:
    """CLIP image embeddings: decode overlapped with batched inference, one halfvec row per photo."""
    model = clip.load(batch.model or configured_clip_model())
    inputs, order = [], []
    for photo in batch.photos:
        with batch.guard(photo):
            inputs.append(image_source(photo, min_edge=int(model.image_size * 1.5)))
            order.append(photo)
    if not order:
        return
    vectors.ensure_index(model.key, model.dim)
    embedded = []
    for index, vector, error in clip.embed_files(model, inputs, batch_size=settings.CLIP_BATCH):
        photo = order[index]
        if vector is None:
            batch.fail(photo, error)
            continue
        with batch.saving(photo):
            Embedding.objects.update_or_create(
                photo_id=photo.pk, model=model.key, defaults={"dim": model.dim, "vector": vector.tolist()}
            )
            embedded.append(photo.pk)
    # New photos' near-duplicates, so the duplicates page keeps up with imports.
    near_duplicates.find_pairs(model.key, model.dim, photo_ids=embedded)


def _check_clip_model(model: str) -> str:
    clip.ClipSpec.parse(model)  # a bad spec is an error now, not in the worker
    return model


def _embedded(model: str):
    try:
        key = clip.ClipSpec.parse(model).key
    except ModelUnavailable:
        return None  # a file-based model that is not here yet has no outputs either
    return Embedding.objects.filter(model=key).values("photo_id")


# -- captions --------------------------------------------------------------------


def _backend_for(model: str):
    from tagging import vlm

    backend_name, _, model_id = (model or configured_caption_model()).partition(":")
    return vlm.get_backend(backend_name, model_id or None)


def photo_context(photo) -> prompt.PhotoContext:
    return prompt.PhotoContext(
        taken_at=photo.local_taken_at if photo.has_capture_time else None,
        place=photo.place,
        camera=photo.camera,
        keywords=list(photo.keywords),
        title=photo.title,
        description=photo.description,
    )


def caption(batch) -> None:
    """The first pass: one sentence and a few tags per photo, a short prompt and a small token budget."""
    vocab = tags.load_vocabulary()

    def save(photo, backend, out):
        saved = save_caption(photo, backend, out, caption_pass=Caption.Pass.FIRST)
        suggest_tags(photo.pk, saved, vocab)

    ask_model(batch, batch.photos, build=prompt.build_first_pass_prompt, budget=settings.CAPTION_FIRST_TOKENS,
              save=save)
    documents.refresh([p.pk for p in batch.photos])


def describe(batch) -> None:
    """The full structured description, once per near-duplicate group.

    A photo whose representative has this model's description reuses it (no
    model call; the copy names its source). Every other photo is described by
    the model; a representative described again takes its members' copies
    back (they follow: ``followers`` queues them at once).
    """
    backend_name, _, model_id = (batch.model or configured_caption_model()).partition(":")
    ids = [p.pk for p in batch.photos]
    reps = dict(Representative.objects.filter(photo_id__in=ids).values_list("photo_id", "representative_id"))
    sources = {
        c.photo_id: c for c in Caption.objects.filter(
            photo_id__in=set(reps.values()), caption_pass=Caption.Pass.FULL, source__isnull=True,
            backend=backend_name, model=model_id, prompt_version=prompt.PROMPT_VERSION)
    }
    vocab = tags.load_vocabulary()
    own = []
    for photo in batch.photos:
        source = sources.get(reps.get(photo.pk))
        if source is None:
            own.append(photo)
            continue
        with batch.saving(photo, seconds=0.0):
            suggest_tags(photo.pk, reuse_caption(photo, source), vocab)

    def save(photo, backend, out):
        saved = save_caption(photo, backend, out, caption_pass=Caption.Pass.FULL)
        suggest_tags(photo.pk, saved, vocab)
        # Described again: what its near-duplicates copied is out of date (their stage goes back to pending).
        Caption.objects.filter(source__photo_id=photo.pk).delete()

    if own:
        ask_model(batch, own, build=prompt.build_prompt, budget=None, save=save)
    documents.refresh(ids)


def reuse_caption(photo, source: Caption) -> Caption:
    """``source``'s full description, as this photo's, saying where it came from."""
    copied = {f: getattr(source, f) for f in ("raw_text", "fields", "caption", "description", "tags", "structured",
                                              "parse_notes")}
    caption, _ = Caption.objects.update_or_create(
        photo=photo, backend=source.backend, model=source.model, prompt_version=source.prompt_version,
        defaults=dict(copied, caption_pass=Caption.Pass.FULL, source=source, latency=None, first_token_latency=None,
                      prompt_tokens=None, output_tokens=None),
    )
    return caption


def suggest_tags(photo_id: int, saved: Caption, vocab) -> None:
    """The caption's tags as suggestions, with the other pass's: a full description adds to the first pass's tags."""
    terms = list(saved.tags)
    for other in Caption.objects.filter(photo_id=photo_id, backend=saved.backend, model=saved.model).exclude(
            pk=saved.pk).values_list("tags", flat=True):
        terms += other
    tags.suggest_from_caption(photo_id, terms, model=f"{saved.backend}:{saved.model}",
                              prompt_version=saved.prompt_version, vocab=vocab)


def ask_model(batch, photos, *, build, budget: int | None, save) -> None:
    """Caption ``photos`` of a claimed batch with ``build(context)`` prompts, as many per model call as the
    backend batches; ``save(photo, backend, output)`` stores each answer (with its done state)."""
    from tagging.vlm.base import CaptionRequest

    backend = _backend_for(batch.model)
    backend.check_available()
    per_call = settings.CAPTION_BATCH if backend.supports_batching else 1
    photos = list(photos)
    for i in range(0, len(photos), per_call):
        requests, ready = [], []
        for photo in photos[i : i + per_call]:
            with batch.guard(photo):
                image = open_upright(
                    image_source(photo, min_edge=settings.CAPTION_IMAGE_SIZE),
                    target=settings.CAPTION_IMAGE_SIZE, max_pixels=settings.MAX_IMAGE_PIXELS,
                )
                requests.append(CaptionRequest(image=image, prompt=build(photo_context(photo)), max_new_tokens=budget))
                ready.append(photo)
        if not requests:
            continue
        try:
            outputs = backend.caption(requests)
        except Exception as exc:  # CaptionError or a model crash: each photo of the call, retried if it may help
            log.warning("caption call failed: %s", exc)
            for photo in ready:
                batch.fail(photo, f"{type(exc).__name__}: {exc}", retry=getattr(exc, "transient", True))
            continue
        finally:
            for r in requests:
                r.image.close()
        for photo, out in zip(ready, outputs):
            with batch.saving(photo, seconds=out.latency):
                save(photo, backend, out)


def clean_text(value: str) -> str:
    """Text Postgres can store: no NUL, no lone surrogates (models emit both)."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _clean(value):
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean(v) for k, v in value.items()}
    return value


def _count(value) -> int | None:
    """A token count the database can hold (a server may report anything)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return None
    return min(value, MAX_INT)


def save_caption(photo, backend, out, *, caption_pass: str = Caption.Pass.FULL) -> Caption:
    """The model's answer as the photo's caption of this pass (replacing a reused one: it is its own now)."""
    first = caption_pass == Caption.Pass.FIRST
    text = clean_text(out.text or "")[: captions.MAX_INPUT_CHARS]  # model output is untrusted, and bounded
    parsed = captions.parse_caption(text, asked=prompt.FIRST_PASS_KEYS if first else None)
    fields = _clean(parsed.fields)
    caption, _ = Caption.objects.update_or_create(
        photo=photo, backend=backend.name, model=backend.model_id,
        prompt_version=prompt.FIRST_PASS_VERSION if first else prompt.PROMPT_VERSION,
        defaults=dict(
            caption_pass=caption_pass,
            source=None,
            raw_text=text,
            fields=fields,
            caption=str(fields.get("caption", "")),
            description=str(fields.get("description", "")),
            tags=[str(t)[:50] for t in list(fields.get("tags", []))[:15]],
            structured=parsed.structured,
            parse_notes=_clean(list(out.notes) + parsed.notes),  # the backend's (a task prompt asked) first
            latency=out.latency,
            first_token_latency=out.first_token_latency,
            prompt_tokens=_count(out.prompt_tokens),
            output_tokens=_count(out.output_tokens),
        ),
    )
    return caption


def _check_caption_model(model: str) -> str:
    if ":" not in model or model.split(":", 1)[0] not in CAPTION_BACKENDS:
        raise ValueError(
            f"caption model {model!r}: write it as BACKEND:MODEL, e.g. transformers:{settings.CAPTION_MODEL}"
        )
    return model


def _captioned(model: str):
    backend, _, model_id = model.partition(":")
    return Caption.objects.filter(backend=backend, model=model_id, prompt_version=prompt.FIRST_PASS_VERSION).values(
        "photo_id")


def _described(model: str):
    backend, _, model_id = model.partition(":")
    return Caption.objects.filter(backend=backend, model=model_id, prompt_version=prompt.PROMPT_VERSION).values(
        "photo_id")


def full_captions_allowed() -> int:
    """How many more full descriptions the model may write this hour (``SHOEBOX_FULL_CAPTIONS_PER_HOUR``;
    0: only for photos someone opens). Reused descriptions cost nothing and do not count."""
    from datetime import timedelta

    from django.utils import timezone

    per_hour = settings.FULL_CAPTIONS_PER_HOUR
    if per_hour <= 0:
        return 0
    written = Caption.objects.filter(caption_pass=Caption.Pass.FULL, source__isnull=True,
                                     updated_at__gte=timezone.now() - timedelta(hours=1)).count()
    return max(0, per_hour - written)


def _representative_done(rows):
    """A near-duplicate's description waits while its representative's is still to come."""
    from django.db.models import Exists, OuterRef

    from gallery.models import PhotoStage

    State = PhotoStage.State
    coming = PhotoStage.objects.filter(photo_id=OuterRef("representative_id"), stage=DESCRIPTION,
                                       state__in=[State.PENDING, State.QUEUED, State.RUNNING, State.UNAVAILABLE])
    return rows.exclude(Exists(Representative.objects.filter(photo_id=OuterRef("photo_id")).filter(Exists(coming))))


def _with_representatives(photo_ids: list[int]) -> list[int]:
    """An opened photo's description, and its representative's, which it waits for."""
    reps = Representative.objects.filter(photo_id__in=photo_ids).values_list("representative_id", flat=True)
    return list(dict.fromkeys([*reps, *photo_ids]))


def _members(photo_ids: list[int]) -> list[int]:
    """The near-duplicates these representatives' descriptions serve."""
    return list(Representative.objects.filter(representative_id__in=photo_ids).values_list("photo_id", flat=True))


def undo_reuse(sender, instance: Caption, **kwargs) -> None:
    """A reused description is gone (its photo left the group, its source was described again or deleted):
    the photo's description is to be made again (``post_delete`` of Caption)."""
    from gallery import engine

    if instance.source_id is not None:
        engine.redo(DESCRIPTION, [instance.photo_id])


def caption_batch_size() -> int:
    """Photos per caption task: one model call's worth, so a timeout charges only the photos in that call."""
    if settings.CAPTION_BACKEND == "transformers":
        return max(1, settings.CAPTION_BATCH)
    if settings.CAPTION_BACKEND == "openai":
        return max(1, settings.OPENAI_CONCURRENCY)
    return 1


# -- the CLIP check of suggested tags -----------------------------------------------------


def score_tags(batch) -> None:
    """Score each photo's tags against its image (``tagging.tag_scores``); auto-accept above the setting."""
    import uuid

    model = clip.load(batch.model or configured_clip_model())
    ids = [p.pk for p in batch.photos]
    images = tag_scores.image_vectors(model.key, ids)
    links: dict[int, list[PhotoTag]] = {}
    for link in PhotoTag.objects.filter(photo_id__in=ids).select_related("tag"):
        links.setdefault(link.photo_id, []).append(link)
    stats = tag_scores.stats_for(model, list({link.tag for group in links.values() for link in group}))
    auto = settings.TAG_AUTO_ACCEPT
    accepted_batch = uuid.uuid4()
    for photo in batch.photos:
        with batch.saving(photo):
            image = images.get(photo.pk)
            for link in links.get(photo.pk, []):
                if image is None or link.tag_id not in stats:
                    continue
                link.similarity, link.score = tag_scores.score(link, image, stats[link.tag_id])
                fields = ["similarity", "score"]
                if auto is not None and link.state == PhotoTag.State.SUGGESTED and link.score >= auto \
                        and link.tag.status == link.tag.Status.ACTIVE:
                    TagDecision.objects.create(photo_id=photo.pk, tag=link.tag, tag_path=link.tag.path,
                                               action="auto-accept", before=link.state,
                                               after=PhotoTag.State.ACCEPTED, batch=accepted_batch)
                    link.state = PhotoTag.State.ACCEPTED
                    fields.append("state")
                link.save(update_fields=fields + ["updated_at"])


def register() -> None:
    stages.register(stages.StageSpec(
        name=EMBEDDING, order=20, needs=(THUMBNAIL,), runner=embed, label="CLIP embeddings",
        batch_size=lambda: settings.CLIP_BATCH * 4, model=configured_clip_model, rerunnable=True,
        check_model=_check_clip_model, outputs=_embedded,
    ))
    stages.register(stages.StageSpec(
        name=CAPTION, order=30, needs=(THUMBNAIL,), runner=caption, label="Captions (first pass)",
        batch_size=caption_batch_size, model=configured_caption_model, rerunnable=True,
        check_model=_check_caption_model, outputs=_captioned, timeout=lambda: settings.CAPTION_TIMEOUT,
    ))
    stages.register(stages.StageSpec(
        name=TAG_SCORE, order=40, needs=(EMBEDDING, CAPTION), uses=(DESCRIPTION,), runner=score_tags,
        label="Tag scores", batch_size=lambda: 200, model=configured_clip_model,
    ))
    # After the embeddings, so that near-duplicates are known: a group is described once.
    stages.register(stages.StageSpec(
        name=DESCRIPTION, order=50, needs=(CAPTION, EMBEDDING), runner=describe, label="Full descriptions",
        batch_size=caption_batch_size, model=configured_caption_model, rerunnable=True,
        check_model=_check_caption_model, outputs=_described, timeout=lambda: settings.CAPTION_TIMEOUT,
        paced=full_captions_allowed, ready=_representative_done, on_open=_with_representatives,
        followers=_members,
    ))
    post_delete.connect(undo_reuse, sender=Caption, dispatch_uid="tagging.undo_reuse")
