"""Caption backends behind one interface, chosen by name and loaded once per process.

``get_backend()`` reads the defaults from settings (``CAPTION_BACKEND``,
``CAPTION_MODEL``, ``OPENAI_*``) and keeps each backend it builds, so a worker
loads a model once and reuses it for every photo. Backend modules are imported
only when asked for: choosing ``openai`` never imports torch or mlx.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from tagging.vlm.base import CaptionBackend, CaptionError, CaptionOutput, CaptionRequest

__all__ = [
    "BACKENDS",
    "CaptionBackend",
    "CaptionError",
    "CaptionOutput",
    "CaptionRequest",
    "clear_backends",
    "get_backend",
]

# name → (module, class); imported lazily.
BACKENDS: dict[str, tuple[str, str]] = {
    "openai": ("tagging.vlm.openai_backend", "OpenAIBackend"),
    "transformers": ("tagging.vlm.transformers_backend", "TransformersBackend"),
    "mlx": ("tagging.vlm.mlx_backend", "MlxBackend"),
}

_cache: dict[tuple, CaptionBackend] = {}
_lock = threading.Lock()


def get_backend(name: str | None = None, model: str | None = None) -> CaptionBackend:
    """The backend ``name`` for ``model`` (defaults from settings), built once per process.

    The cache key is (name, model) plus the settings the backend is built with,
    so a changed setting (in a test, say) gives a new backend rather than a
    stale one; in a running worker the settings do not change.
    """
    from django.conf import settings

    name = name or settings.CAPTION_BACKEND
    if name not in BACKENDS:
        raise ValueError(f"unknown caption backend {name!r}: use one of {', '.join(BACKENDS)}")
    model = model or _default_model(name, settings)
    args, kwargs = _constructor_args(name, model, settings)
    key = (name, model, tuple(sorted(kwargs.items())), tuple(args))
    with _lock:
        backend = _cache.get(key)
        if backend is None:
            module_name, class_name = BACKENDS[name]
            cls = getattr(importlib.import_module(module_name), class_name)
            backend = _cache[key] = cls(*args, **kwargs)
    return backend


def clear_backends() -> None:
    """Forget every backend built so far (tests; or to free a model's memory)."""
    with _lock:
        _cache.clear()


def _default_model(name: str, settings: Any) -> str:
    if name == settings.CAPTION_BACKEND:
        return settings.CAPTION_MODEL
    if name == "openai":
        return settings.OPENAI_MODEL
    return settings.DEFAULT_CAPTION_MODELS[name]


def _constructor_args(name: str, model: str, settings: Any) -> tuple[list, dict[str, Any]]:
    max_tokens = settings.CAPTION_MAX_NEW_TOKENS
    if name == "openai":
        return [settings.OPENAI_BASE_URL, model], {
            "api_key": settings.OPENAI_API_KEY,
            "timeout": settings.OPENAI_TIMEOUT,
            "retries": settings.OPENAI_RETRIES,
            "max_tokens": max_tokens,
            "concurrency": getattr(settings, "OPENAI_CONCURRENCY", 1),
        }
    if name == "transformers":
        return [model], {
            "max_new_tokens": max_tokens,
            "dtype": settings.CAPTION_DTYPE,
            "image_splitting": settings.CAPTION_IMAGE_SPLITTING,
        }
    return [model], {"max_new_tokens": max_tokens}
