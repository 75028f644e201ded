"""Captions from a vision-language model run in-process with Hugging Face transformers.

The default backend on Linux and Windows (CUDA when present, else the CPU).
Weights come only from a local folder or the local Hugging Face cache — never
downloaded here; a missing model raises
:class:`~tagging.availability.ModelUnavailable` with the fix.

Speed levers (measured in ``shared/notes/models-on-these-machines.md``):
image splitting off for SmolVLM/Idefics3 (one 512 px tile instead of 17:
~15x less prefill), bf16 where the CPU has ``avx512_bf16``/AMX, greedy
decoding, and torch threads × concurrent workers ≤ cores with
``OMP_WAIT_POLICY=PASSIVE`` (``gallery.settings`` sets both).

Model families through ``AutoModelForImageTextToText`` (transformers 5.x,
native classes, no ``trust_remote_code``), each run with a tiny model of its
real architecture by ``tests/test_model_families.py``:

* **SmolVLM / Idefics3, SmolVLM2** (``HuggingFaceTB/SmolVLM-256M-Instruct``,
  ``-500M-Instruct``, SmolVLM2): image splitting is turned off here unless
  ``image_splitting=True``. SmolVLM2's processor needs ``num2words``.
* **Qwen2-VL / Qwen2.5-VL**: image tokens follow the image size, which the
  pipeline bounds with ``CAPTION_IMAGE_SIZE``.
* **LLaVA-NeXT (LLaVA 1.6)**: always its any-resolution grid.
* **InternVL3 / 3.5** (``-hf`` checkpoints): one tile per photo unless
  ``image_splitting=True`` (``crop_to_patches`` per call; up to 12 otherwise).
* **Llama 3.2 Vision (Mllama)**: the image goes in through cross-attention;
  up to 4 tiles (padded to the model's fixed count whatever it is told).
* **PaliGemma**: no chat template; Shoebox's prompt follows its image token.
* **Florence-2** (converted checkpoints, ``Florence2ForConditionalGeneration``)
  and **BLIP-2**: no chat template and no instructions — they get their task
  prompt (``TASK_PROMPTS``) instead of Shoebox's, answer in prose, and each
  output carries a note saying so, stored with the caption. Florence-2 is an
  encoder-decoder: its output is what follows the decoder's start token.
* **Moondream2, FastVLM, Phi-3.5-vision, remote-code InternVL**: no native
  class; they load only with ``trust_remote_code``, which Shoebox does not
  enable — they are reported as unavailable, naming where they do run
  (``REMOTE_CODE_FAMILIES``: Ollama, the mlx backend, vLLM, an ``-hf`` checkpoint).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagging.availability import ModelUnavailable
from tagging.vlm.base import CaptionBackend, CaptionError, CaptionOutput, CaptionRequest

log = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


def pull_fix(model_id: str) -> str:
    """How the owner gets ``model_id``'s weights onto this machine."""
    return (
        "Run `python manage.py models pull` on a machine with internet access, or run "
        f"`huggingface-cli download {model_id}` on another machine, copy the folder here "
        "and set SHOEBOX_CAPTION_MODEL to that folder."
    )


def _looks_like_path(model_id: str) -> bool:
    """A model id that can only be a folder: absolute, relative (./, ../), home (~), or Windows-style."""
    return model_id.startswith(("/", ".", "~", "\\")) or (len(model_id) > 1 and model_id[1] == ":")


def _check_folder(model_id: str, folder: Path) -> Path:
    if not (folder / "config.json").is_file():
        raise ModelUnavailable(model_id, f"{folder} has no config.json", pull_fix(model_id))
    if not any(next(folder.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        raise ModelUnavailable(model_id, f"{folder} holds no weights (*.safetensors)", pull_fix(model_id))
    return folder


def local_model_folder(model_id: str) -> Path:
    """The local folder holding ``model_id``: the folder itself, or its snapshot in the HF cache.

    Never downloads (``local_files_only``). Raises ``ModelUnavailable`` naming
    the model and the fix when the folder is missing or incomplete, or when a
    hub id is not in the local Hugging Face cache (``HF_HOME``/``HF_HUB_CACHE``).
    """
    if not model_id.strip():
        raise ModelUnavailable("(none)", "no caption model is configured", "Set SHOEBOX_CAPTION_MODEL.")
    folder = Path(model_id).expanduser()
    if folder.is_dir():
        return _check_folder(model_id, folder)
    if _looks_like_path(model_id):
        raise ModelUnavailable(model_id, f"the folder {folder} does not exist", pull_fix(model_id))

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        snapshot = snapshot_download(model_id, local_files_only=True)
    except HFValidationError as exc:
        reason = f"it is neither a folder nor a valid hub id ({exc})"
        raise ModelUnavailable(model_id, reason, pull_fix(model_id)) from exc
    except LocalEntryNotFoundError as exc:
        raise ModelUnavailable(model_id, "it is not in the local Hugging Face cache", pull_fix(model_id)) from exc
    return _check_folder(model_id, Path(snapshot))


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (``avx512_bf16`` or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:  # not Linux: no cheap way to tell, fp32 is the safe choice
        return False
    return False


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto`` → bf16 on CUDA (fp16 without bf16 support) or bf16-capable CPUs, else fp32."""
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if cpu_supports_bf16() else "float32"


def configured_threads() -> int | None:
    """``settings.WORKER_THREADS`` when Django is configured, else None (torch's default)."""
    from django.conf import settings

    if not (settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE")):
        return None
    threads = getattr(settings, "WORKER_THREADS", None)
    return int(threads) if threads else None


def load_processor(folder: Path, model_id: str | None = None):
    """The folder's transformers processor, even in a process that has imported mlx_vlm.

    Importing mlx_vlm patches ``AutoProcessor.from_pretrained`` process-wide so
    that, for model types it knows (idefics3, qwen2_5_vl …), it returns its own
    processor producing MLX arrays. When that happens, load transformers' own
    class for the model type instead.
    """
    import transformers
    from transformers import AutoProcessor
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    try:
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    except ImportError as exc:  # a processor's own dependency (SmolVLM2's num2words …)
        raise ModelUnavailable(
            model_id or str(folder), f"its processor needs a package that is not installed ({exc})",
            "Install Shoebox's requirements (`pip install -r requirements.txt`).",
        ) from exc
    if type(processor).__module__.startswith("transformers."):
        return processor
    model_type = model_type_of(folder)
    native = getattr(transformers, PROCESSOR_MAPPING_NAMES.get(model_type) or type(processor).__name__, None)
    if native is None:
        raise ModelUnavailable(
            model_id or str(folder), f"transformers has no processor class for model type {model_type!r}",
            "Use the mlx backend for this model, or choose a natively supported one.",
        )
    return native.from_pretrained(folder, local_files_only=True)


# Families without a chat template that answer task prompts, not instructions: the prompt
# they are given whatever Shoebox asked, and why. Their answers are prose, and each output
# says so in ``notes`` (the parser then stores them unstructured).
TASK_PROMPTS: dict[str, tuple[str, str]] = {
    "florence2": ("<MORE_DETAILED_CAPTION>", "Florence-2 takes task prompts only: asked <MORE_DETAILED_CAPTION>"),
    "blip-2": ("", "BLIP-2 captions without instructions: asked for a plain caption"),
}


# Checkpoints that exist only as remote code (``trust_remote_code``, which Shoebox never
# enables), by config.json's model_type: the family, and where it does run.
REMOTE_CODE_FAMILIES: dict[str, tuple[str, str]] = {
    "moondream1": ("Moondream2", "serve it with Ollama (`moondream`) and set SHOEBOX_CAPTION_BACKEND=openai"),
    "llava_qwen2": ("FastVLM", "use the mlx backend (SHOEBOX_CAPTION_BACKEND=mlx) or `python -m mlx_vlm server` "
                    "with SHOEBOX_CAPTION_BACKEND=openai"),
    "phi3_v": ("Phi-3.5-vision", "use the mlx backend (SHOEBOX_CAPTION_BACKEND=mlx) or serve it with vLLM and set "
               "SHOEBOX_CAPTION_BACKEND=openai"),
    "internvl_chat": ("InternVL (remote-code checkpoint)", "use its `-hf` checkpoint (e.g. OpenGVLab/InternVL3-1B-hf), "
                      "the mlx backend, or serve it with vLLM and set SHOEBOX_CAPTION_BACKEND=openai"),
}
NO_NATIVE_CLASS_FIX = (
    "Choose a natively supported model (SmolVLM, Qwen2.5-VL, …) or serve it through an "
    "OpenAI-compatible server and set SHOEBOX_CAPTION_BACKEND=openai."
)


def model_type_of(folder: Path) -> str:
    """config.json's ``model_type`` ("" when unreadable)."""
    try:
        return str(json.loads((Path(folder) / "config.json").read_text()).get("model_type", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def refuse_remote_code(model_id: str, folder: Path) -> None:
    """Raise ``ModelUnavailable`` naming where to run it if ``folder`` holds a remote-code-only family."""
    model_type = model_type_of(folder)
    if model_type in REMOTE_CODE_FAMILIES:
        family, alternative = REMOTE_CODE_FAMILIES[model_type]
        raise ModelUnavailable(
            model_id,
            f"{family} has no native transformers class (it needs remote code, which Shoebox does not run)",
            alternative[0].upper() + alternative[1:] + ".",
        )


@dataclass
class _Loaded:
    model: Any
    processor: Any
    device: str
    dtype: str
    eos_ids: frozenset[int]
    pad_id: int | None
    model_type: str = ""


class _FirstTokenClock:
    """A stopping criterion that never stops: it notes when the first new token exists.

    ``generate()`` calls stopping criteria right after appending each new token,
    so the first call marks time to first token (for a batch: the batch's first).
    """

    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        if self.at is None:
            if input_ids.is_cuda:
                torch.cuda.synchronize()
            self.at = time.perf_counter()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class TransformersBackend(CaptionBackend):
    """Caption photos with a transformers image-text-to-text model, several per ``generate()`` call.

    ``model_id`` is a hub id (read from the local HF cache only) or a local
    folder. The model loads on first use and stays on the instance for the
    process. ``min_new_tokens`` exists for benchmarks (fixed-length timing with
    random weights); leave it at 0.
    """

    name = "transformers"
    supports_batching = True

    def __init__(
        self,
        model_id: str,
        *,
        max_new_tokens: int = 400,
        dtype: str = "auto",
        image_splitting: bool = False,
        device: str | None = None,
        min_new_tokens: int = 0,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r}: use one of {', '.join(DTYPES)}")
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        self.model_id = model_id
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = min(min_new_tokens, max_new_tokens)
        self.dtype = dtype
        self.image_splitting = image_splitting
        self.device = device
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TransformersBackend({self.model_id!r}, dtype={self.dtype!r}, device={self.device!r})"

    def check_available(self) -> None:
        """Raise ``ModelUnavailable`` unless the weights are on this machine (no download, no load)."""
        local_model_folder(self.model_id)

    # --- loading -------------------------------------------------------------

    @property
    def loaded(self) -> _Loaded:
        """The model, processor and settings, loaded on first access and kept."""
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._load()
        return self._loaded

    def _load(self) -> _Loaded:
        folder = local_model_folder(self.model_id)
        import torch
        from transformers import AutoModelForImageTextToText

        threads = configured_threads()
        if threads and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = resolve_dtype(self.dtype, device)
        started = time.perf_counter()
        refuse_remote_code(self.model_id, folder)
        try:
            processor = load_processor(folder, self.model_id)
            model = AutoModelForImageTextToText.from_pretrained(
                folder, dtype=getattr(torch, dtype), local_files_only=True
            )
        except ValueError as exc:  # "Unrecognized configuration class …": no native class
            raise ModelUnavailable(
                self.model_id,
                f"transformers has no native image-text-to-text class for it ({exc})",
                NO_NATIVE_CLASS_FIX,
            ) from exc
        except OSError as exc:  # a file the loader needs is missing or unreadable
            raise ModelUnavailable(self.model_id, f"loading failed ({exc})", pull_fix(self.model_id)) from exc
        model = model.to(device).eval()

        image_processor = getattr(processor, "image_processor", None)
        if image_processor is not None and hasattr(image_processor, "do_image_splitting"):
            image_processor.do_image_splitting = self.image_splitting
        tokenizer = getattr(processor, "tokenizer", processor)
        tokenizer.padding_side = "left"  # decoder-only batches are padded on the left

        eos = model.generation_config.eos_token_id
        eos_ids = frozenset([eos] if isinstance(eos, int) else (eos or []))
        pad = model.generation_config.pad_token_id
        if pad is None:
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(sorted(eos_ids)), None)
        log.info(
            "loaded %s on %s (%s, %d threads) in %.1f s",
            self.model_id, device, dtype, torch.get_num_threads(), time.perf_counter() - started,
        )
        return _Loaded(model, processor, device, dtype, eos_ids, pad, model.config.model_type)

    # --- captioning ----------------------------------------------------------

    def prompt_text(self, prompt: str) -> str:
        """The model's chat-formatted prompt for one image followed by ``prompt``.

        A family without a chat template gets its task prompt (``TASK_PROMPTS``),
        or ``prompt`` after the image token its processor expands (PaliGemma).
        """
        loaded = self.loaded
        processor = loaded.processor
        if loaded.model_type in TASK_PROMPTS:
            return TASK_PROMPTS[loaded.model_type][0]
        if getattr(processor, "chat_template", None) is None:
            image_token = getattr(processor, "image_token", None)
            return f"{image_token}{prompt}" if loaded.model_type == "paligemma" and image_token else prompt
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def prepare(self, requests: list[CaptionRequest]):
        """Processor outputs for ``requests`` as one left-padded batch on the model's device."""
        loaded = self.loaded
        texts = [self.prompt_text(r.prompt) for r in requests]
        images = [[r.image] for r in requests]
        inputs = loaded.processor(text=texts, images=images, padding=True, return_tensors="pt",
                                  **self.image_options())
        inputs.pop("labels", None)  # PaliGemma's processor adds training labels
        return inputs.to(loaded.device, dtype=loaded.model.dtype)

    def image_options(self) -> dict[str, Any]:
        """Per-call processor options that keep a photo to one tile unless ``image_splitting``.

        SmolVLM/Idefics3 are set on the image processor at load time; InternVL
        crops photos into up to 12 tiles unless told otherwise on each call.
        Qwen2-VL's image tokens follow the photo's size (bounded by
        ``CAPTION_IMAGE_SIZE``); LLaVA-NeXT always adds its any-resolution grid
        to the base tile; Mllama's tiles (up to 4) are padded to the model's
        fixed count whatever the processor is told, so they stay as they are.
        """
        if self.image_splitting or self.loaded.model_type != "internvl":
            return {}
        return {"crop_to_patches": False}

    def generate_kwargs(self, requests: list[CaptionRequest] | None = None) -> dict[str, Any]:
        """Greedy, bounded decoding (the largest budget among ``requests``)."""
        loaded = self.loaded
        budget = max((r.budget(self.max_new_tokens) for r in requests), default=self.max_new_tokens) \
            if requests else self.max_new_tokens
        kwargs: dict[str, Any] = dict(
            max_new_tokens=budget,
            do_sample=False,
            num_beams=1,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=loaded.pad_id,
        )
        if self.min_new_tokens:
            kwargs["min_new_tokens"] = min(self.min_new_tokens, budget)
        return kwargs

    def caption(self, requests: list[CaptionRequest]) -> list[CaptionOutput]:
        """Caption all ``requests`` in one ``generate()`` call; one output per request, in order.

        ``latency`` is the call's wall time (preprocessing included) divided by
        the number of requests, so latencies add up to the time spent;
        ``first_token_latency`` is the time from the call's start until the
        batch's first new token.
        """
        if not requests:
            return []
        import torch
        from transformers import StoppingCriteriaList

        loaded = self.loaded
        started = time.perf_counter()
        clock = _FirstTokenClock()
        try:
            inputs = self.prepare(requests)
            with torch.inference_mode():
                sequences = loaded.model.generate(
                    **inputs, **self.generate_kwargs(requests), stopping_criteria=StoppingCriteriaList([clock])
                )
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise CaptionError(
                f"{self.model_id}: out of memory captioning {len(requests)} photos: {exc}", transient=True
            ) from exc
        except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as exc:  # a processor or model refusing
            raise CaptionError(f"{self.model_id}: generation failed: {type(exc).__name__}: {exc}",
                               transient=False) from exc
        latency = (time.perf_counter() - started) / len(requests)
        first_token = clock.at - started if clock.at is not None else None

        # A decoder-only model returns the prompt and then the new tokens; an encoder-decoder
        # (Florence-2) returns its decoder's start token and then the new tokens.
        prompt_width = 1 if loaded.model.config.is_encoder_decoder else inputs["input_ids"].shape[1]
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
        notes = [TASK_PROMPTS[loaded.model_type][1]] if loaded.model_type in TASK_PROMPTS else []
        outputs = []
        for request, row, prompt_tokens in zip(requests, sequences[:, prompt_width:].tolist(), prompt_lengths):
            # One call generates up to the batch's largest budget; each answer keeps to its own.
            new_tokens = self._until_eos(row, loaded.eos_ids)[: request.budget(self.max_new_tokens)]
            text_tokens = new_tokens[:-1] if new_tokens and new_tokens[-1] in loaded.eos_ids else new_tokens
            outputs.append(
                CaptionOutput(
                    text=tokenizer.decode(text_tokens, skip_special_tokens=True).strip(),
                    prompt_tokens=int(prompt_tokens),
                    output_tokens=len(new_tokens),
                    latency=latency,
                    first_token_latency=first_token,
                    notes=list(notes),
                )
            )
        return outputs

    @staticmethod
    def _until_eos(tokens: list[int], eos_ids: frozenset[int]) -> list[int]:
        """New tokens up to and including the first end-of-sequence; the padding after it dropped."""
        for i, token in enumerate(tokens):
            if token in eos_ids:
                return tokens[: i + 1]
        return tokens
