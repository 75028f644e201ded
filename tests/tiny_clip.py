"""Tiny open_clip models with fixed random weights, built offline for tests.

No machine of this project can download weights, so the tests exercise the
real loading and embedding code on real (tiny) open_clip architectures. The
weights are random but deterministic: the same seed gives the same file.
Never use these outside tests.

- :func:`build_tiny_clip` writes a ``local-dir:`` folder (``open_clip_config.json``
  with ``model_cfg`` + ``preprocess_cfg``, ``open_clip_model.safetensors``).
- :func:`build_tiny_clip_weights_file` writes a bare weights file plus a JSON
  architecture config registered with ``open_clip.add_model_config``, and
  returns an ``ARCH:/path/file.safetensors`` spec (how an owner uses weights
  copied from another machine).

Both build in well under a second and embed in milliseconds with one thread.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

#: embed_dim 32, a 2-layer width-64 ViT on 64-px images in 16-px patches and a
#: 2-layer width-64 text tower. The vocabulary must stay 49408: open_clip's
#: bundled tokenizer emits ids up to that.
TINY_MODEL_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_PREPROCESS_CFG = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}
#: The architecture name build_tiny_clip_weights_file registers with open_clip.
TINY_ARCH = "ShoeboxTiny-ViT-64"


def tiny_model_cfg(embed_dim: int = 32) -> dict:
    """The tiny config with another embedding size (a second, different model)."""
    return {**TINY_MODEL_CFG, "embed_dim": embed_dim}


def _random_state_dict(model_cfg: dict, seed: int) -> dict:
    """The state dict of an open_clip CLIP built from ``model_cfg`` with torch seeded to ``seed``."""
    import torch
    from open_clip import CLIP

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIP(**model_cfg)
    return {name: tensor.contiguous() for name, tensor in model.state_dict().items()}


def _write_atomically(path: Path, write) -> None:
    """Write through ``PATH.part`` and rename, so a reader never sees half a file."""
    part = path.with_name(path.name + ".part")
    write(part)
    os.replace(part, path)


def _save_weights(state_dict: dict, path: Path) -> None:
    from safetensors.torch import save_file

    _write_atomically(path, lambda part: save_file(state_dict, str(part)))


def _save_json(data: dict, path: Path) -> None:
    _write_atomically(path, lambda part: part.write_text(json.dumps(data, indent=2), encoding="utf-8"))


def build_tiny_clip(directory: Path, *, seed: int = 0, embed_dim: int = 32) -> str:
    """Write a tiny open_clip model as a ``local-dir:`` folder; return its spec ``"local-dir:/…"``."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    model_cfg = tiny_model_cfg(embed_dim)
    _save_json({"model_cfg": model_cfg, "preprocess_cfg": TINY_PREPROCESS_CFG}, directory / "open_clip_config.json")
    _save_weights(_random_state_dict(model_cfg, seed), directory / "open_clip_model.safetensors")
    return f"local-dir:{directory}"


def register_tiny_arch(directory: Path) -> str:
    """Write the tiny architecture's JSON config into ``directory`` and register it; return its name."""
    import open_clip

    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / f"{TINY_ARCH}.json"  # open_clip names a config by its file stem
    _save_json(TINY_MODEL_CFG, config)
    if TINY_ARCH not in open_clip.list_models():
        open_clip.add_model_config(config)
    return TINY_ARCH


def build_tiny_clip_weights_file(directory: Path, *, seed: int = 0) -> str:
    """Write a tiny model's weights as one file; return the spec ``"ARCH:/…/tiny.safetensors"``.

    The architecture is registered with open_clip in this process only
    (``open_clip.add_model_config``), as a real owner's ``ViT-B-32`` is built in.
    """
    directory = Path(directory).resolve()
    arch = register_tiny_arch(directory)
    weights = directory / f"tiny-seed{seed}.safetensors"
    _save_weights(_random_state_dict(TINY_MODEL_CFG, seed), weights)
    return f"{arch}:{weights}"


def put_in_hf_cache(cache_dir: Path, repo_id: str, files: dict[str, Path], *, commit: str = "0" * 40) -> Path:
    """Lay ``files`` out as the Hugging Face hub cache does after a download; return the snapshot folder.

    ``models--ORG--NAME/refs/main`` holds the commit, ``snapshots/COMMIT/NAME``
    the files (copies here; symlinks into ``blobs/`` in a real cache, which
    readers follow either way). This is the layout ``manage.py models pull``
    leaves behind, so loaders can be tested against it offline.
    """
    import shutil

    repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit, encoding="ascii")
    for name, source in files.items():
        shutil.copyfile(source, snapshot / name)
    return snapshot
