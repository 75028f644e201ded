"""The one small interface every caption backend implements.

A backend turns ``CaptionRequest`` s (an image and a prompt) into
``CaptionOutput`` s (the model's raw text, token counts and timing). Parsing
the text into fields is ``tagging.captions``' job, not the backend's, so every
backend is judged by the same parser.

Backends: ``openai`` (any OpenAI-compatible server: Ollama, llama.cpp's
llama-server, LM Studio, vLLM, mlx_vlm.server), ``transformers`` (torch, in
process) and ``mlx`` (Apple Silicon, in process). ``tagging.vlm.get_backend``
picks one from settings.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import PIL.Image

__all__ = ["CaptionBackend", "CaptionError", "CaptionOutput", "CaptionRequest"]


@dataclass
class CaptionRequest:
    """One photo to caption."""

    image: PIL.Image.Image  # RGB, upright, long edge <= settings.CAPTION_IMAGE_SIZE
    prompt: str
    # A smaller token budget than the backend's own (a short first pass); None = the backend's.
    max_new_tokens: int | None = None

    def budget(self, default: int) -> int:
        """The most new tokens this request may generate: its own budget, never above ``default``."""
        return default if not self.max_new_tokens else max(1, min(self.max_new_tokens, default))


@dataclass
class CaptionOutput:
    """What the model said about one photo, and what it cost."""

    text: str  # raw model output
    prompt_tokens: int | None
    output_tokens: int | None
    latency: float  # seconds for this request (batch time / n when batched)
    first_token_latency: float | None = None
    # What the backend did that the caption's reader should know (a task prompt instead of
    # Shoebox's, say); stored with the parser's notes.
    notes: list[str] = field(default_factory=list)


class CaptionError(RuntimeError):
    """A caption request failed; the message names where and what went wrong.

    ``transient`` says whether trying again later may help (a timeout, a server
    that is down or overloaded) or not (a model the server does not have, a
    refused API key, an answer that is not an OpenAI-style reply).
    """

    def __init__(self, message: str, *, transient: bool = True, status: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.status = status


class CaptionBackend(abc.ABC):
    """A vision-language model that captions photos."""

    name: str  # "openai", "transformers", "mlx"
    model_id: str  # what is recorded with each caption
    supports_batching: bool = False  # whether caption() gains from several requests at once

    @abc.abstractmethod
    def check_available(self) -> None:
        """Raise ``ModelUnavailable`` if the model cannot be used here; quick, never downloads."""

    @abc.abstractmethod
    def caption(self, requests: list[CaptionRequest]) -> list[CaptionOutput]:
        """One output per request, in order; raise ``CaptionError`` when a request fails."""
