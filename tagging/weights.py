"""Which models are configured, whether their weights are here, and fetching them.

``manage.py models`` lists them; ``manage.py models pull`` downloads what is
missing (on a machine that can reach the model hub). Nothing here downloads
on its own: the worker only ever loads what is already on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from tagging import clip
from tagging.availability import ModelUnavailable


@dataclass
class ModelStatus:
    role: str  # "CLIP embeddings", "captions"
    name: str
    available: bool
    message: str


def configured_models() -> list[ModelStatus]:
    from tagging import vlm

    statuses = []
    try:
        clip.check_available(settings.CLIP_MODEL)
        statuses.append(ModelStatus("CLIP embeddings", settings.CLIP_MODEL, True, "present"))
    except (ModelUnavailable, ValueError) as exc:
        statuses.append(ModelStatus("CLIP embeddings", settings.CLIP_MODEL, False, str(exc)))
    name = f"{settings.CAPTION_BACKEND}:{settings.CAPTION_MODEL}"
    try:
        vlm.get_backend().check_available()
        statuses.append(ModelStatus("captions", name, True, "present"))
    except (ModelUnavailable, ValueError, ImportError) as exc:
        statuses.append(ModelStatus("captions", name, False, str(exc)))
    return statuses


def pull_caption_model(progress=None) -> str:
    """Download the configured caption model into the Hugging Face cache."""
    if settings.CAPTION_BACKEND == "openai":
        raise ModelUnavailable(
            settings.OPENAI_MODEL,
            "captions come from a server; Shoebox does not download its models",
            f"Pull the model on the server itself (for Ollama: `ollama pull {settings.OPENAI_MODEL}`).",
        )
    from pathlib import Path

    if Path(settings.CAPTION_MODEL).exists():
        return settings.CAPTION_MODEL
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(settings.CAPTION_MODEL)
    except Exception as exc:  # network refused, unknown repo, disk full: say which
        raise ModelUnavailable(
            settings.CAPTION_MODEL, f"download failed: {type(exc).__name__}: {exc}",
            "Check the machine can reach huggingface.co, or download the folder elsewhere "
            f"(`huggingface-cli download {settings.CAPTION_MODEL}`), copy it here and set "
            "SHOEBOX_CAPTION_MODEL to its path.",
        ) from exc


def pull_all(progress=None) -> list[tuple[str, str]]:
    """Download every configured model that is missing; [(model, outcome)]."""
    outcomes = []
    for status in configured_models():
        if status.available:
            outcomes.append((status.name, "already present"))
            continue
        try:
            if status.role == "CLIP embeddings":
                path = clip.pull(settings.CLIP_MODEL, progress)
            else:
                path = pull_caption_model(progress)
            outcomes.append((status.name, f"downloaded to {path}"))
        except ModelUnavailable as exc:
            outcomes.append((status.name, f"FAILED: {exc.message}"))
    return outcomes
