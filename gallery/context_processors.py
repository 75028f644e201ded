"""Template context on every page."""

import re

from django.utils.functional import SimpleLazyObject

from gallery import engine, stages

# How ``tagging.availability.ModelUnavailable.message`` begins. A model name may hold a colon
# itself (``ViT-B-32:laion2b_s34b_b79k``), so the name ends where " is not available: " starts.
_MODEL_MESSAGE = re.compile(r"Model (?P<model>.+?) is not available: ")


def _waiting(title: str) -> str:
    """A stage's title inside a sentence: "Captions" → "captions", "CLIP embeddings" unchanged."""
    return title[:1].lower() + title[1:] if title[1:2].islower() else title


def headline(spec: stages.StageSpec, message: str) -> str:
    """One line saying what is wrong and what waits; the full message (reason, fix) is the detail."""
    found = _MODEL_MESSAGE.match(message)
    if found:
        return f"The model {found['model']} is not available here — {_waiting(spec.title)} wait; " \
               "everything else keeps working."
    return f"{spec.title} wait for something that is not available here; everything else keeps working."


def _problems() -> list[dict]:
    """One entry per stage that waits for something it needs (model weights, a server)."""
    return [{"headline": headline(spec, message), "detail": message} for spec, message in engine.unavailable()]


def model_banner(request):
    """Messages for models whose weights are missing (the banner on every page).

    Lazy: the queries run only when a template shows the banner, not for the
    htmx fragments (grid pages, search-as-you-type) that never do.
    """
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"model_problems": SimpleLazyObject(_problems)}
