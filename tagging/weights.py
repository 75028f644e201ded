"""Which models are configured, whether their weights are here, and fetching them.

``manage.py models`` lists them; ``manage.py models pull`` downloads what is
missing (on a machine that can reach the model hub), and ``make run`` calls
``models pull --if-online`` before it starts: the first run of a new install
fetches its default models with progress bars, unless ``SHOEBOX_OFFLINE=1``
or the hub cannot be reached (said once; Shoebox starts anyway and the
banner names what is missing). The worker only ever loads what is already
on disk.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
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


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = 4.0) -> str:
    """Empty when the model hub answers within ``timeout`` seconds, else why not (one line)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(hub_endpoint() + "/api/models?limit=1", method="HEAD"),
                                    timeout=timeout):
            return ""
    except urllib.error.HTTPError:
        return ""  # it answered: the hub is there (a HEAD the API refuses is still an answer)
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


def pull_if_online(say) -> list[tuple[str, str]]:
    """What ``make run`` does before starting: fetch the missing models, or say in one line why not.

    Never fails the start: a model that cannot be fetched leaves its stage waiting, with the banner.
    """
    # Captions from a server are the server's to fetch (the banner says if it lacks the model).
    missing = [status for status in configured_models() if not status.available
               and not (status.role == "captions" and settings.CAPTION_BACKEND == "openai")]
    if not missing:
        return []
    names = ", ".join(status.name for status in missing)
    if settings.OFFLINE:
        say(f"SHOEBOX_OFFLINE is set: not downloading {names}; those stages wait until the weights are here.")
        return []
    why = hub_reachable()
    if why:
        say(f"The model hub ({hub_endpoint()}) cannot be reached ({why}): starting without {names}; "
            "the gallery works and a banner says what waits. Copy the weights here or run "
            "`manage.py models pull` where the hub is reachable.")
        return []
    say(f"Downloading the missing models ({names}) — once; set SHOEBOX_OFFLINE=1 to skip.")
    wanted = {status.name for status in missing}
    return [(name, outcome) for name, outcome in pull_all(progress=say) if name in wanted]
