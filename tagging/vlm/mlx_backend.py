"""Captions from a vision-language model run in-process with mlx-vlm.

The default backend on Apple Silicon, where MLX uses the GPU and unified
memory. It also runs on a Linux CPU (``pip install "mlx[cpu]" mlx-vlm``), but
there MLX's matmuls are ~15x slower than torch's: fine for tests with tiny
models, not for a real library — use the transformers backend on Linux.

Weights come from a local folder or the local Hugging Face cache only
(``mlx-community/…`` conversions, or a transformers ``save_pretrained``
folder, which mlx-vlm loads directly). Greedy decoding; token counts and
timings come from mlx-vlm's own ``GenerationResult``.

Families run here with tiny models (``tests/test_model_families.py``): SmolVLM,
SmolVLM2, Qwen2-VL, Qwen2.5-VL, LLaVA-NeXT, PaliGemma, InternVL3.5 (``-hf``) and
Llama 3.2 Vision, from folders in the hub's layout. ``unsupported_reason`` names
the ones mlx-vlm 0.7.10 cannot run (BLIP-2, transformers-format Florence-2,
InternVL3 with its Qwen2.5 decoder); they are unavailable, naming the
transformers backend.

Pitfalls (``shared/notes/models-on-these-machines.md``): a model whose vocabulary
is larger than its tokenizer makes mlx-vlm's streaming detokenizer raise
``IndexError``; MLX JIT-compiles kernels with g++ on the first run (cached
under ``$TMPDIR/mlx/``), so the first caption of a process is slow; MLX
streams are per thread, so caption from the thread that loaded the model.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from tagging.availability import ModelUnavailable
from tagging.vlm.base import CaptionBackend, CaptionError, CaptionOutput, CaptionRequest
from tagging.vlm.transformers_backend import local_model_folder, pull_fix

log = logging.getLogger(__name__)

USE_TRANSFORMERS = "Set SHOEBOX_CAPTION_BACKEND=transformers to caption with it in-process (torch)."


def unsupported_reason(config: dict) -> str | None:
    """Why mlx-vlm 0.7.10 cannot run the checkpoint whose config.json is ``config`` (None: it can).

    Measured with tiny models of each family (tests/test_model_families.py); the
    families not named here load and caption.
    """
    model_type = config.get("model_type", "")
    vision = (config.get("vision_config") or {}).get("model_type", "")
    text = (config.get("text_config") or {}).get("model_type", "")
    if model_type in ("blip-2", "blip_2"):
        return "mlx-vlm has no BLIP-2 model"
    if model_type == "florence2" and vision != "davit":
        return ("mlx-vlm reads only the original remote-code Florence-2 layout (a 'davit' vision config), "
                "not transformers' converted checkpoints")
    if model_type == "internvl" and text and text != "qwen3":
        return (f"mlx-vlm's InternVL builds a Qwen3 decoder (InternVL3.5); this checkpoint's decoder is {text} "
                "(InternVL3: use the transformers backend, or an mlx-community conversion)")
    return None


class MlxBackend(CaptionBackend):
    """Caption photos one at a time with mlx-vlm's ``stream_generate``.

    ``image_splitting`` applies to SmolVLM/Idefics3 processors (off by
    default, as in the transformers backend: one tile instead of up to 17);
    other families ignore it.
    """

    name = "mlx"
    supports_batching = False

    def __init__(self, model_id: str, *, max_new_tokens: int = 400, image_splitting: bool = False) -> None:
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        self.model_id = model_id
        self.max_new_tokens = max_new_tokens
        self.image_splitting = image_splitting
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MlxBackend({self.model_id!r})"

    def check_available(self) -> None:
        """Raise ``ModelUnavailable`` unless mlx-vlm is installed and the weights are here (no load)."""
        self._folder()

    def _folder(self) -> Path:
        if importlib.util.find_spec("mlx") is None or importlib.util.find_spec("mlx_vlm") is None:
            raise ModelUnavailable(
                self.model_id,
                "mlx-vlm is not installed",
                'Install it with `pip install mlx-vlm` (Apple Silicon) or `pip install "mlx[cpu]" mlx-vlm` '
                "(Linux, slow), or set SHOEBOX_CAPTION_BACKEND=transformers.",
            )
        return local_model_folder(self.model_id)

    @property
    def loaded(self) -> tuple[Any, Any]:
        """``(model, processor)``, loaded on first access and kept."""
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._load()
        return self._loaded

    def _load(self) -> tuple[Any, Any]:
        folder = self._folder()
        try:
            reason = unsupported_reason(json.loads((folder / "config.json").read_text()))
        except (OSError, ValueError, AttributeError):
            reason = None
        if reason:
            raise ModelUnavailable(self.model_id, reason, USE_TRANSFORMERS)
        from mlx_vlm import load

        started = time.perf_counter()
        try:
            model, processor = load(str(folder))
        except FileNotFoundError as exc:  # a file the loader needs
            raise ModelUnavailable(self.model_id, f"mlx-vlm cannot load it ({exc})", pull_fix(self.model_id)) from exc
        except (ValueError, TypeError) as exc:  # an unsupported model type or layout
            raise ModelUnavailable(
                self.model_id, f"mlx-vlm cannot load it ({str(exc)[:500]})",
                f"{USE_TRANSFORMERS} Or use an mlx-community conversion of the model.",
            ) from exc
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is not None and hasattr(image_processor, "do_image_splitting"):
            image_processor.do_image_splitting = self.image_splitting
        log.info("loaded %s with mlx-vlm in %.1f s", self.model_id, time.perf_counter() - started)
        return model, processor

    def prompt_text(self, prompt: str) -> str:
        """The model's chat-formatted prompt for one image followed by ``prompt``."""
        from mlx_vlm import apply_chat_template

        model, processor = self.loaded
        return apply_chat_template(processor, model.config, prompt, num_images=1)

    def caption(self, requests: list[CaptionRequest]) -> list[CaptionOutput]:
        """Caption each request in turn (mlx-vlm generates one sequence at a time here)."""
        return [self._caption_one(request) for request in requests]

    def _caption_one(self, request: CaptionRequest) -> CaptionOutput:
        from mlx_vlm import stream_generate

        model, processor = self.loaded
        started = time.perf_counter()
        first_token: float | None = None
        pieces: list[str] = []
        last = None
        try:
            prompt = self.prompt_text(request.prompt)
            for result in stream_generate(
                model,
                processor,
                prompt,
                image=[request.image],
                max_tokens=request.budget(self.max_new_tokens),
                temperature=0.0,
                skip_special_tokens=True,
            ):
                if first_token is None:
                    first_token = time.perf_counter() - started
                pieces.append(result.text)
                last = result
        except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise CaptionError(f"{self.model_id}: generation failed: {type(exc).__name__}: {exc}",
                               transient=False) from exc
        if last is None:
            raise CaptionError(f"{self.model_id}: mlx-vlm returned no result", transient=False)
        if last.token_ids is not None:
            # Decode the whole sequence as transformers does: mlx-vlm's streaming
            # detokenizer skips only the tokenizer's listed special tokens, not
            # every added special token (SmolVLM's <row_i_col_j>, for one).
            tokenizer = getattr(processor, "tokenizer", processor)
            text = tokenizer.decode(last.token_ids, skip_special_tokens=True)
        else:
            text = "".join(pieces)
        return CaptionOutput(
            text=text.strip(),
            prompt_tokens=last.prompt_tokens,
            output_tokens=last.generation_tokens,
            latency=time.perf_counter() - started,
            first_token_latency=first_token,
        )
