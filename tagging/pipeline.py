"""The AI stages: CLIP embeddings and structured VLM captions, batch by batch.

Both are registered as stages (``tagging.apps``) and run through
``gallery.pipeline``: in the django-q2 worker, or in the foreground with
``manage.py process --sync``. Models are loaded once per process and kept
(``clip.load`` and ``vlm.get_backend`` cache them). A model whose weights are
missing puts the batch in the "unavailable" state without using an attempt.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction

from gallery import stages
from gallery.imaging import BrokenImage, SkipFile, open_upright
from gallery.models import Photo, PhotoStage
from gallery.originals import OriginalMissing, original_path
from gallery.thumbnails import thumbnail_path
from tagging import captions, clip, documents, near_duplicates, prompt, vectors
from tagging.availability import ModelUnavailable
from tagging.models import Caption, Embedding

log = logging.getLogger(__name__)
State = PhotoStage.State


def configured_clip_model() -> str:
    return settings.CLIP_MODEL


def configured_caption_model() -> str:
    return f"{settings.CAPTION_BACKEND}:{settings.CAPTION_MODEL}"


def image_source(photo: Photo, *, min_edge: int) -> bytes | str:
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


def _claim_all(stage: str, photo_ids: list[int]) -> tuple[dict[int, PhotoStage], dict[int, Photo], dict]:
    """Claim each photo of a batch: its stage rows, the photos, and counts with those not claimed as skipped."""
    claimed = {}
    for pk in photo_ids:
        ps = stages.claim(stage, pk)
        if ps is not None:
            claimed[pk] = ps
    photos = Photo.objects.in_bulk(list(claimed))
    return claimed, photos, {"done": 0, "failed": 0, "skipped": len(photo_ids) - len(claimed)}


def _unavailable(stage: str, photo_ids: list[int], exc: ModelUnavailable) -> dict:
    stages.mark_unavailable(stage, photo_ids, exc.message)
    return {"done": 0, "failed": 0, "skipped": 0, "unavailable": len(photo_ids)}


# -- embeddings ------------------------------------------------------------------


def embed_batch(photo_ids: list[int], model_spec: str = "") -> dict:
    """Embed a batch of photos with ``model_spec`` (default: the configured CLIP model)."""
    stage = PhotoStage.Stage.EMBEDDING
    model_spec = model_spec or configured_clip_model()
    try:
        model = clip.load(model_spec)
    except ModelUnavailable as exc:
        return _unavailable(stage, photo_ids, exc)
    claimed, photos, counts = _claim_all(stage, photo_ids)
    inputs, order = [], []
    started = time.monotonic()
    for pk, ps in claimed.items():
        try:
            inputs.append(image_source(photos[pk], min_edge=int(model.image_size * 1.5)))
            order.append(pk)
        except OriginalMissing as exc:
            stages.finish(ps, started=started, error=str(exc))
            counts["failed"] += 1
    if not order:
        return counts
    try:
        results = list(clip.embed_files(model, inputs, batch_size=settings.CLIP_BATCH))
    except Exception as exc:  # the model itself failed: every photo goes back for another attempt
        log.exception("embedding batch failed")
        for pk in order:
            ps = claimed[pk]
            final = ps.attempts >= stages.max_attempts()
            stages.finish(ps, started=started, error=f"{type(exc).__name__}: {exc}",
                          state=State.FAILED if final else State.PENDING)
        counts["failed"] += len(order)
        return counts

    per_photo = (time.monotonic() - started) / len(order)
    vectors.ensure_index(model.key, model.dim)
    embedded: list[int] = []
    for index, vector, error in results:
        pk = order[index]
        ps = claimed[pk]
        if vector is None:
            stages.finish(ps, started=time.monotonic() - per_photo, error=error)
            counts["failed"] += 1
            continue
        with transaction.atomic():
            Embedding.objects.update_or_create(
                photo_id=pk, model=model.key, defaults={"dim": model.dim, "vector": vector.tolist()}
            )
            stages.finish(ps, started=time.monotonic() - per_photo)
        counts["done"] += 1
        embedded.append(pk)
    # New photos' near-duplicates, so the duplicates page keeps up with imports.
    near_duplicates.find_pairs(model.key, model.dim, photo_ids=embedded)
    return counts


# -- captions --------------------------------------------------------------------


def _backend_for(model: str):
    from tagging import vlm

    backend_name, _, model_id = (model or configured_caption_model()).partition(":")
    return vlm.get_backend(backend_name, model_id or None)


def photo_context(photo: Photo) -> prompt.PhotoContext:
    return prompt.PhotoContext(
        taken_at=photo.local_taken_at if not photo.taken_at_source == "file mtime" else None,
        place=photo.place,
        camera=photo.camera,
        keywords=list(photo.keywords),
        title=photo.title,
        description=photo.description,
    )


def caption_batch(photo_ids: list[int], model: str = "") -> dict:
    """Caption a batch of photos with ``model`` ("backend:model id"; default: the configured one)."""
    from tagging.vlm.base import CaptionRequest

    stage = PhotoStage.Stage.CAPTION
    try:
        backend = _backend_for(model)
        backend.check_available()
    except ModelUnavailable as exc:
        return _unavailable(stage, photo_ids, exc)
    claimed, photos, counts = _claim_all(stage, photo_ids)
    per_call = settings.CAPTION_BATCH if backend.supports_batching else 1
    pending = list(claimed)
    for i in range(0, len(pending), per_call):
        chunk = pending[i : i + per_call]
        started = time.monotonic()
        requests, ready = [], []
        for pk in chunk:
            photo = photos[pk]
            try:
                image = open_upright(
                    image_source(photo, min_edge=settings.CAPTION_IMAGE_SIZE),
                    target=settings.CAPTION_IMAGE_SIZE, max_pixels=settings.MAX_IMAGE_PIXELS,
                )
            except (BrokenImage, SkipFile, OriginalMissing) as exc:
                stages.finish(claimed[pk], started=started, error=getattr(exc, "reason", None) or str(exc))
                counts["failed"] += 1
                continue
            requests.append(CaptionRequest(image=image, prompt=prompt.build_prompt(photo_context(photo))))
            ready.append(pk)
        if not requests:
            continue
        try:
            outputs = backend.caption(requests)
        except Exception as exc:  # CaptionError or a model crash: recorded on each photo, retried while attempts remain
            log.warning("caption call failed: %s", exc)
            transient = getattr(exc, "transient", True)
            for pk in ready:
                ps = claimed[pk]
                final = not transient or ps.attempts >= stages.max_attempts()
                stages.finish(ps, started=started, error=f"{type(exc).__name__}: {exc}",
                              state=State.FAILED if final else State.PENDING)
            counts["failed"] += len(ready)
            continue
        finally:
            for r in requests:
                r.image.close()
        for pk, out in zip(ready, outputs):
            save_caption(photos[pk], backend, out)
            stages.finish(claimed[pk], started=time.monotonic() - out.latency)
            counts["done"] += 1
        documents.refresh(ready)
    return counts


def save_caption(photo: Photo, backend, out) -> Caption:
    parsed = captions.parse_caption(out.text)
    fields = parsed.fields
    caption, _ = Caption.objects.update_or_create(
        photo=photo, backend=backend.name, model=backend.model_id, prompt_version=prompt.PROMPT_VERSION,
        defaults=dict(
            raw_text=out.text.replace("\x00", ""),  # Postgres text cannot hold NUL
            fields=fields,
            caption=str(fields.get("caption", "")),
            description=str(fields.get("description", "")),
            tags=list(fields.get("tags", []))[:15],
            structured=parsed.structured,
            parse_notes=parsed.notes,
            latency=out.latency,
            first_token_latency=out.first_token_latency,
            prompt_tokens=out.prompt_tokens,
            output_tokens=out.output_tokens,
        ),
    )
    return caption


# -- re-running with another model -------------------------------------------------


def _has_output(stage: str, model: str):
    """Photo ids that already have this stage's output from ``model``."""
    if stage == PhotoStage.Stage.EMBEDDING:
        key = clip.ClipSpec.parse(model).key
        return Embedding.objects.filter(model=key).values("photo_id")
    backend, _, model_id = model.partition(":")
    return Caption.objects.filter(backend=backend, model=model_id, prompt_version=prompt.PROMPT_VERSION).values(
        "photo_id"
    )


def reprocess(stage: str, *, model: str | None = None, only_missing: bool = False) -> int:
    """Mark ``stage`` to be done again (with ``model``, default the configured one). Returns photos marked.

    Earlier results stay until the new ones exist. With ``only_missing``,
    photos that already have this model's output are left alone.
    """
    if stage not in (PhotoStage.Stage.EMBEDDING, PhotoStage.Stage.CAPTION):
        raise ValueError(f"reprocess works on the embedding and caption stages, not {stage!r}")
    model = model or stages.STAGES[stage].model()
    if stage == PhotoStage.Stage.EMBEDDING:
        clip.ClipSpec.parse(model)  # a bad spec is an error now, not in the worker
    elif ":" not in model or model.split(":", 1)[0] not in ("mlx", "transformers", "openai"):
        raise ValueError(f"caption model {model!r}: write it as BACKEND:MODEL, e.g. transformers:{settings.CAPTION_MODEL}")
    stages.ensure_rows(stage)
    rows = PhotoStage.objects.filter(stage=stage).exclude(state__in=[State.QUEUED, State.RUNNING])
    if only_missing:
        try:
            done = _has_output(stage, model)
        except ModelUnavailable:
            done = None  # a file-based model that is not here yet has no outputs either
        if done is not None:
            rows = rows.exclude(photo_id__in=done)
    return rows.update(model=model, state=State.PENDING, attempts=0, error="")
