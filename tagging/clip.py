"""CLIP image and text embeddings with open_clip: model specs, loading, batched embedding.

Shoebox embeds every photo once with a CLIP image tower and every search
query with the matching text tower; the two land in the same space, so a
query is answered by cosine similarity in pgvector. Every stored vector
carries the model's :attr:`ClipSpec.key`, so vectors of two models are never
compared with each other.

Choosing a model (``SHOEBOX_CLIP_MODEL``)
-----------------------------------------
The default is ``ViT-B-32:laion2b_s34b_b79k``: the best text→image retrieval
of the models that run at gallery-import speed on a CPU. Search is
text→image retrieval, so that column decides; ImageNet zero-shot accuracy is
shown for comparison. Quality figures are open_clip's published benchmark
results (``docs/openclip_retrieval_results.csv`` and ``openclip_results.csv``
in the open_clip repository); image GFLOP per photo from open_clip's
``docs/model_profile.csv``. Speed on these machines (2-core AMD EPYC, fp32,
torch 2.14) was measured for ViT-B-32 (8.73 GFLOP, ≈ 0.10 CPU-s per image at
batch 8–32, ≈ 86 GFLOP per CPU-second: DESIGN.md); the other rows scale
that by their FLOPs. "50k photos" is the model's time alone on 2 cores; a
12 MP JPEG adds ≈ 37 ms CPU of decoding (JPEG draft), see "Pipeline" below.

=================================  ======  =========  ==========  =========  ========  ========  ===
spec                               GFLOP   CPU-s/img  50k photos  Flickr    COCO      ImageNet  dim
                                   /image             model only  T→I R@1   T→I R@1   0-shot
=================================  ======  =========  ==========  =========  ========  ========  ===
ViT-B-32:laion2b_s34b_b79k          8.8    0.10       ≈ 45 min    66.8       39.3      66.6      512
ViT-B-32:datacomp_xl_s13b_b90k      8.8    0.10       ≈ 45 min    61.1       37.1      69.2      512
ViT-B-32-256:datacomp_s34b_b86k    11.5    0.13 est.  ≈ 1 h       64.9       39.9      72.8      512
ViT-B-16:laion2b_s34b_b88k         35.1    0.41 est.  ≈ 3 h       69.8       42.3      70.2      512
ViT-L-14:laion2b_s32b_b82k        162      1.9 est.   ≈ 13 h      75.5       46.5      75.3      768
ViT-L-14:datacomp_xl_s13b_b90k    162      1.9 est.   ≈ 13 h      73.4       45.7      79.2      768
=================================  ======  =========  ==========  =========  ========  ========  ===

* **ViT-B-32 laion2b_s34b_b79k** (default, ≈ 600 MB): the pipeline measured
  ≈ 14 photos/s from 12 MP originals on two cores (a 50,000-photo library in
  ≈ 1 h) and ≈ 20/s from the 400-px thumbnails (≈ 45 min); a text query
  costs ≈ 6 GFLOP over the full 77-token context (132 ms on one thread),
  and 38 ms when only its own tokens are computed (:func:`encode_text`). The datacomp_xl weights of the same size
  classify better but retrieve worse, and search is retrieval.
* **ViT-B-32-256 datacomp_s34b_b86k** costs 1.3× as much and classifies far
  better (72.8 %), but retrieves no better on Flickr30k and barely better on
  COCO: not worth switching a library for.
* **ViT-B-16** is 4× the compute for +3 points of retrieval: worth it on a
  machine with a GPU or many cores, or for a library that grows slowly.
* **ViT-L-14** is 18× the compute (and a 768-d vector): for a GPU.
* **ViT-S-32** (2.3 GFLOP, 4× cheaper than B-32) has no released weights in
  open_clip 3.3.0; there is no smaller pretrained tier to offer here.

Changing the model changes every key: all photos are embedded again.

Spec formats (:meth:`ClipSpec.parse`)
-------------------------------------
``ARCH:TAG``
    An open_clip architecture and pretrained tag, e.g.
    ``ViT-B-32:laion2b_s34b_b79k``. Weights come from the local Hugging Face
    cache only (``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``~/.cache/huggingface/hub``); ``python manage.py models pull`` fills it.
``ARCH:/abs/path/weights.safetensors`` (or ``.pt``, ``.pth``, ``.bin``)
    A weights file copied from another machine (open_clip's state dict, e.g.
    the ``open_clip_model.safetensors`` of the hub repository).

Both ``ARCH:`` forms need an architecture that uses open_clip's bundled
tokenizer (the OpenAI-style CLIP models: ViT, ConvNeXt, ResNet); SigLIP and
multilingual models fetch their tokenizer from the hub, so use their
``hf-hub:`` repository or a ``local-dir:`` folder that holds it.
``local-dir:/abs/path``
    A folder with ``open_clip_config.json`` and ``open_clip_model.safetensors``
    (what ``open_clip.push_to_hf_hub`` writes, and what the tests build).
``hf-hub:org/name``
    An open_clip repository on the Hugging Face hub, read from the local cache.

Loading never downloads and never falls back to random weights: missing
weights raise :class:`~tagging.availability.ModelUnavailable` naming the
model and the fix. Heavy imports (torch, open_clip) happen inside functions.

Pipeline (:func:`embed_files`)
------------------------------
Files are decoded by :func:`gallery.imaging.open_upright` (JPEG draft to the
smallest DCT scale above ``2 × image_size``, EXIF orientation, sRGB), then
by the model's own preprocessing, in a small thread pool that runs up to two
batches ahead of inference; batches of ``batch_size`` go through the image
tower. Pillow and torch release the GIL, so decoding overlaps the forward pass.

Measured with ``bench/clip_bench.py`` (ViT-B-32, batch 16, 12 MP JPEGs, the
shared 2-core EPYC, best of interleaved rounds, two runs): the bare model ran
at 17.6–20.8 img/s (≈ 95 CPU-ms per image); decoding + preprocessing costs
≈ 37 CPU-ms per photo. Overlapped decoding with 2 threads reached
13.9–14.7 img/s against 10.8–11.6 with decoding inline (1.3×); a batch
decoded in parallel but not overlapped gave 13.4, one decode thread 12.5, one
decode thread and one torch thread 7.8. So overlap pays, and 2 threads
(:func:`default_decode_threads`) reach ≈ 95 % of the CPU-bound limit of
2 cores / (37 + 95 ms) ≈ 15 img/s, i.e. 71–79 % of the bare model. With
PASSIVE OpenMP waiting the extra threads cost no CPU time (≈ 135 CPU-ms per
photo either way). From 12 MP originals on 2 cores the decode CPU, not the
scheduling, is what keeps the pipeline under 80 % of the bare model. Feeding
the gallery's 400-px grid thumbnails instead (a few ms to decode) ran at
19.7 img/s, 95 % of the bare model, with model inputs ≈ 40 dB PSNR from the
original's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagging.availability import ModelUnavailable

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

logger = logging.getLogger(__name__)

LOCAL_DIR_PREFIX = "local-dir:"
HF_HUB_PREFIX = "hf-hub:"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")

#: The management command that downloads weights (it calls :func:`pull`).
PULL_COMMAND = "python manage.py models pull"

# open_clip's names for the files of a hub repository (open_clip/constants.py).
_HF_CONFIG_NAME = "open_clip_config.json"
_HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"
_HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"

# The weights files open_clip looks for in a local-dir folder, best first
# (open_clip.factory._find_checkpoint_in_dir).
_LOCAL_DIR_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)

# Where open_clip keeps the weights of the tags this module recommends (the
# ``hf_hub`` entries of open_clip/pretrained.py), so that checking them does
# not import torch. Any other tag is looked up in open_clip itself.
# tests/test_clip.py checks this table against open_clip's.
KNOWN_PRETRAINED: dict[tuple[str, str], str] = {
    ("ViT-B-32", "laion2b_s34b_b79k"): "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/",
    ("ViT-B-32", "datacomp_xl_s13b_b90k"): "laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K/",
    ("ViT-B-32-256", "datacomp_s34b_b86k"): "laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K/",
    ("ViT-B-16", "laion2b_s34b_b88k"): "laion/CLIP-ViT-B-16-laion2B-s34B-b88K/",
    ("ViT-B-16", "datacomp_xl_s13b_b90k"): "laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K/",
    ("ViT-L-14", "laion2b_s32b_b82k"): "laion/CLIP-ViT-L-14-laion2B-s32B-b82K/",
    ("ViT-L-14", "datacomp_xl_s13b_b90k"): "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K/",
}

_ARCH_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_REPO_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")

# Defaults of embed_files outside Django (settings.MAX_IMAGE_PIXELS, CLIP_BATCH).
_DEFAULT_MAX_PIXELS = 200_000_000
_DEFAULT_BATCH = 16


# --------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSpec:
    """Which CLIP model to use and where its weights are.

    ``kind`` is one of ``"pretrained"`` (``arch`` + open_clip tag in
    ``source``), ``"file"`` (``arch`` + absolute weights path), ``"local-dir"``
    (folder path) or ``"hf-hub"`` (``org/name``). Build one with :meth:`parse`.
    """

    kind: str
    source: str
    arch: str = ""

    @classmethod
    def parse(cls, text: str) -> ClipSpec:
        """Parse a ``SHOEBOX_CLIP_MODEL`` value; ValueError says what is wrong and what is accepted."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"empty CLIP model spec; {_FORMATS}")
        text = text.strip()
        if text.startswith(LOCAL_DIR_PREFIX):
            path = _absolute_path(text[len(LOCAL_DIR_PREFIX) :], text)
            return cls("local-dir", str(path))
        if text.startswith(HF_HUB_PREFIX):
            repo = text[len(HF_HUB_PREFIX) :].strip("/")
            if not _REPO_RE.fullmatch(repo):
                raise ValueError(f"CLIP model spec {text!r}: expected hf-hub:ORG/NAME; {_FORMATS}")
            return cls("hf-hub", repo)
        arch, sep, rest = text.partition(":")
        if not sep:
            raise ValueError(
                f"CLIP model spec {text!r} names an architecture but no weights "
                f"(an architecture alone would be a random model); {_FORMATS}"
            )
        if not _ARCH_RE.fullmatch(arch):
            raise ValueError(f"CLIP model spec {text!r}: {arch!r} is not an open_clip architecture name; {_FORMATS}")
        if not rest:
            raise ValueError(f"CLIP model spec {text!r}: nothing after the colon; {_FORMATS}")
        if rest.startswith(("/", "~", ".", "\\")) or rest.lower().endswith(WEIGHT_SUFFIXES):
            path = _absolute_path(rest, text)
            if path.suffix.lower() not in WEIGHT_SUFFIXES:
                raise ValueError(
                    f"CLIP model spec {text!r}: a weights file must end in "
                    f"{', '.join(WEIGHT_SUFFIXES)} (for a folder use local-dir:PATH)"
                )
            return cls("file", str(path), arch)
        if not _TAG_RE.fullmatch(rest):
            raise ValueError(f"CLIP model spec {text!r}: {rest!r} is neither a pretrained tag nor a path; {_FORMATS}")
        return cls("pretrained", _clean_tag(rest), arch)

    def __str__(self) -> str:
        """The canonical spec text (parses back to an equal spec)."""
        if self.kind == "local-dir":
            return LOCAL_DIR_PREFIX + self.source
        if self.kind == "hf-hub":
            return HF_HUB_PREFIX + self.source
        return f"{self.arch}:{self.source}"

    @property
    def key(self) -> str:
        """A stable identity of the weights, stored with every embedding.

        Hub models are named by what they are (``ViT-B-32:laion2b_s34b_b79k``,
        ``hf-hub:org/name``). Weights that live at a path are named by their
        content, since any file may be copied to that path: ``ARCH:sha256:…``
        or ``local-dir:sha256:…`` (the hash of the weights, and for a folder
        of its config too). Hashing reads the file once per process (cached
        by path, size and mtime), ≈ 0.3 s for ViT-B-32's 600 MB. Raises
        ModelUnavailable when that file is missing.
        """
        if self.kind in ("pretrained", "hf-hub"):
            return str(self)
        check_available(self)
        if self.kind == "file":
            return f"{self.arch}:sha256:{_file_digest(Path(self.source))[:16]}"
        folder = Path(self.source)
        weights = _local_dir_weights(folder)
        assert weights is not None  # check_available found them
        digest = hashlib.sha256()
        digest.update((folder / _HF_CONFIG_NAME).read_bytes())
        digest.update(_file_digest(weights).encode())
        return f"local-dir:sha256:{digest.hexdigest()[:16]}"

    def describe(self) -> str:
        """A sentence for people: which model, from where."""
        if self.kind == "pretrained":
            return f"CLIP {self.arch} with open_clip's {self.source!r} weights (Hugging Face cache)"
        if self.kind == "file":
            return f"CLIP {self.arch} with the weights file {self.source}"
        if self.kind == "local-dir":
            return f"CLIP model in the folder {self.source}"
        return f"CLIP model {self.source} from the Hugging Face hub (local cache)"


_FORMATS = (
    "use ARCH:TAG (e.g. ViT-B-32:laion2b_s34b_b79k), ARCH:/abs/path/weights.safetensors, "
    "local-dir:/abs/path or hf-hub:ORG/NAME"
)


def _absolute_path(raw: str, text: str) -> Path:
    path = Path(os.path.expandvars(raw)).expanduser()
    if not raw or not path.is_absolute():
        raise ValueError(f"CLIP model spec {text!r}: the path must be absolute (workers may run in another folder)")
    return path


def _clean_tag(tag: str) -> str:
    """open_clip's tag normalisation (pretrained._clean_tag): lower case, ``-`` → ``_``."""
    return tag.lower().replace("-", "_")


def _as_spec(spec: ClipSpec | str) -> ClipSpec:
    return spec if isinstance(spec, ClipSpec) else ClipSpec.parse(spec)


# --------------------------------------------------------------------------
# Where the weights are (no torch needed)
# --------------------------------------------------------------------------


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, read from the environment now (not at import)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.environ[name])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(os.path.expandvars(home)).expanduser() / "hub"


@dataclass(frozen=True)
class _HubFiles:
    """A hub repository and the files to try for its weights, best first."""

    repo_id: str
    weights: tuple[str, ...]


def _safe_alternatives(filename: str) -> tuple[str, ...]:
    """The safetensors names open_clip tries before ``filename`` (pretrained._get_safe_alternatives)."""
    if filename == _HF_WEIGHTS_NAME:
        return (_HF_SAFE_WEIGHTS_NAME,)
    if filename.endswith((".bin", ".pth")):
        return (filename[:-4] + ".safetensors",)
    return ()


def _hub_files(spec: ClipSpec) -> _HubFiles:
    """Repository and weight file names for a pretrained tag or an hf-hub spec."""
    if spec.kind == "hf-hub":
        return _HubFiles(spec.source, (_HF_SAFE_WEIGHTS_NAME, _HF_WEIGHTS_NAME))
    hf_hub = KNOWN_PRETRAINED.get((spec.arch, spec.source))
    if hf_hub is None:
        hf_hub = _open_clip_hf_hub(spec)
    if hf_hub.endswith("/"):  # "org/name/": open_clip's default file name
        repo_id, filename = hf_hub.rstrip("/"), _HF_WEIGHTS_NAME
    else:  # "org/name/file.bin"
        repo_id, filename = hf_hub.rsplit("/", 1)
    return _HubFiles(repo_id, (*_safe_alternatives(filename), filename))


def _open_clip_hf_hub(spec: ClipSpec) -> str:
    """The ``hf_hub`` entry of open_clip's table for a tag not in KNOWN_PRETRAINED (imports torch)."""
    from open_clip import pretrained  # noqa: PLC0415  (heavy: imports torch)

    cfg = pretrained.get_pretrained_cfg(spec.arch, spec.source)
    if not cfg:
        tags = pretrained.list_pretrained_tags_by_model(spec.arch)
        known = f"its tags are: {', '.join(tags)}" if tags else "open_clip has no pretrained weights for it"
        raise ModelUnavailable(
            str(spec),
            f"open_clip 3.3 knows no pretrained tag {spec.source!r} for {spec.arch} ({known})",
            "Set SHOEBOX_CLIP_MODEL to ARCH:TAG with a tag open_clip lists (`open_clip.list_pretrained()`).",
        )
    if not cfg.get("hf_hub"):
        raise ModelUnavailable(
            str(spec),
            "open_clip publishes these weights only by URL, not on the Hugging Face hub",
            f"Download {cfg.get('url', 'the weights')} on another machine, copy it here and set "
            f"SHOEBOX_CLIP_MODEL={spec.arch}:/path/to/that/file.",
        )
    return cfg["hf_hub"]


def _cached_file(repo_id: str, filename: str, cache: Path) -> str | None:
    """The path of ``filename`` in the local cache, or None. Never touches the network."""
    from huggingface_hub import try_to_load_from_cache  # noqa: PLC0415

    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache)
    return found if isinstance(found, str) and os.path.isfile(found) else None


def _cached_weights(files: _HubFiles, cache: Path) -> str | None:
    for name in files.weights:
        found = _cached_file(files.repo_id, name, cache)
        if found:
            return found
    return None


def _local_dir_weights(folder: Path) -> Path | None:
    """The weights file open_clip will load from a local-dir folder (same choice as open_clip)."""
    for name in _LOCAL_DIR_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(
        (p for pattern in ("*.safetensors", "*.bin", "*.pth") for p in folder.glob(pattern) if p.is_file()),
        key=lambda p: (p.suffix != ".safetensors", p.name),
    )
    return candidates[0] if candidates else None


def _arch_config(arch: str) -> dict | None:
    """open_clip's model config for ``arch`` (None if unknown), without importing torch when avoidable.

    Configs registered at run time (``open_clip.add_model_config``) exist only
    in a process that imported open_clip; otherwise the JSON files packaged
    with open_clip are all there is.
    """
    open_clip = sys.modules.get("open_clip")
    if open_clip is not None:
        return open_clip.get_model_config(arch)
    import importlib.util  # noqa: PLC0415

    found = importlib.util.find_spec("open_clip")
    if found is None or not found.submodule_search_locations:
        raise ModelUnavailable(arch, "open_clip is not installed", "Install the requirements (open-clip-torch).")
    config = Path(next(iter(found.submodule_search_locations))) / "model_configs" / f"{arch}.json"
    if not config.is_file():
        return None
    with open(config, encoding="utf-8") as f:
        return json.load(f)


def _check_arch(spec: ClipSpec) -> None:
    """The architecture of an ARCH:… spec exists, and its tokenizer needs no download.

    open_clip's bundled BPE tokenizer serves the OpenAI-style CLIP models;
    SigLIP and multilingual models name a tokenizer on the hub, which only a
    ``hf-hub:`` or ``local-dir:`` folder carries.
    """
    config = _arch_config(spec.arch)
    if config is None:
        raise ModelUnavailable(
            str(spec),
            f"open_clip has no architecture named {spec.arch!r}",
            "Name the architecture the weights were trained for, e.g. ViT-B-32:laion2b_s34b_b79k "
            "or ViT-B-32:/path/to/file.safetensors (`open_clip.list_models()` lists them).",
        )
    if config.get("text_cfg", {}).get("hf_tokenizer_name") or "siglip" in spec.arch.lower():
        raise ModelUnavailable(
            str(spec),
            f"{spec.arch} needs a tokenizer from the Hugging Face hub, which Shoebox does not fetch",
            "Use the model's hub repository (hf-hub:ORG/NAME) or a local-dir: folder that holds its tokenizer files.",
        )


def _pull_fix(spec: ClipSpec, cache: Path | None = None) -> str:
    """What the owner does to get ``spec``'s weights onto this machine."""
    if spec.kind in ("pretrained", "hf-hub"):
        return (
            f"Run `{PULL_COMMAND}` on this machine if it has internet access (it downloads into "
            f"{cache or hf_hub_cache()}), or run it on another machine and copy its Hugging Face cache "
            "folder here (or point HF_HOME at a copy), or copy the weights file and set "
            "SHOEBOX_CLIP_MODEL=ARCH:/path/to/open_clip_model.safetensors."
        )
    if spec.kind == "file":
        return (
            f"Copy the weights file to {spec.source}, or point SHOEBOX_CLIP_MODEL at where it is. "
            f"On a machine with internet access `{PULL_COMMAND}` puts the file in the Hugging Face "
            "cache (…/snapshots/*/open_clip_model.safetensors)."
        )
    return (
        f"Copy the model folder (open_clip_config.json and open_clip_model.safetensors) to {spec.source}, "
        f"or use a hub model (ARCH:TAG) and run `{PULL_COMMAND}`."
    )


def check_available(spec: ClipSpec | str) -> None:
    """Raise ModelUnavailable unless ``spec``'s weights are on this machine.

    Never downloads and never touches the network. Local files and the
    recommended tags (:data:`KNOWN_PRETRAINED`) are checked without importing
    torch; another tag needs open_clip's table, which imports torch (≈ 6 s
    once per process).
    """
    spec = _as_spec(spec)
    name = str(spec)
    if spec.kind == "file":
        _check_arch(spec)
        path = Path(spec.source)
        if not path.is_file():
            reason = f"{path} is a folder, not a weights file" if path.is_dir() else f"the file {path} does not exist"
            raise ModelUnavailable(name, reason, _pull_fix(spec))
        return
    if spec.kind == "local-dir":
        folder = Path(spec.source)
        if not folder.is_dir():
            raise ModelUnavailable(name, f"the folder {folder} does not exist", _pull_fix(spec))
        if not (folder / _HF_CONFIG_NAME).is_file():
            raise ModelUnavailable(name, f"{folder} has no {_HF_CONFIG_NAME}", _pull_fix(spec))
        if _local_dir_weights(folder) is None:
            raise ModelUnavailable(name, f"{folder} holds no weights (open_clip_model.safetensors)", _pull_fix(spec))
        return
    if spec.kind == "pretrained":
        _check_arch(spec)
    cache = hf_hub_cache()
    files = _hub_files(spec)
    if spec.kind == "hf-hub" and _cached_file(files.repo_id, _HF_CONFIG_NAME, cache) is None:
        raise ModelUnavailable(
            name, f"{files.repo_id}/{_HF_CONFIG_NAME} is not in the Hugging Face cache ({cache})", _pull_fix(spec, cache)
        )
    if _cached_weights(files, cache) is None:
        raise ModelUnavailable(
            name,
            f"its weights ({files.repo_id}/{files.weights[0]}) are not in the Hugging Face cache ({cache})",
            _pull_fix(spec, cache),
        )


def pull(spec: ClipSpec | str, progress: Callable[[str], None] | None = None) -> str:
    """Download ``spec``'s weights into the Hugging Face cache; return the local path.

    For ``manage.py models pull``. Files that are already cached are not
    downloaded again. Local specs (a file or a folder) have nothing to
    download: their path is returned if it is there, else ModelUnavailable.
    Without network access this raises ModelUnavailable saying so
    (huggingface_hub retries for ≈ 20 s first unless ``HF_HUB_OFFLINE=1``).
    """
    spec = _as_spec(spec)
    say = progress or (lambda message: None)
    if spec.kind in ("file", "local-dir"):
        check_available(spec)
        say(f"{spec.describe()}: present, nothing to download")
        return spec.source

    from huggingface_hub import hf_hub_download  # noqa: PLC0415
    from huggingface_hub.errors import RemoteEntryNotFoundError  # noqa: PLC0415

    cache = hf_hub_cache()
    files = _hub_files(spec)
    wanted = [(_HF_CONFIG_NAME,)] if spec.kind == "hf-hub" else []
    wanted.append(files.weights)  # alternatives, best first: the first the hub has is enough
    result = ""
    for alternatives in wanted:
        missing = []
        for filename in alternatives:
            result = _cached_file(files.repo_id, filename, cache) or ""
            if result:
                say(f"{files.repo_id}/{filename}: already in {cache}")
                break
            say(f"downloading {files.repo_id}/{filename} into {cache}")
            try:
                result = hf_hub_download(files.repo_id, filename, cache_dir=cache)
                break
            except RemoteEntryNotFoundError:  # the hub has no such file: try the next name
                missing.append(filename)
            except OSError as exc:  # no connection, offline mode, unknown repository, HTTP errors
                raise ModelUnavailable(
                    str(spec),
                    f"downloading {files.repo_id}/{filename} from the Hugging Face hub failed ({_first_line(exc)})",
                    "Check this machine's internet access, or pull on another machine and copy its "
                    f"Hugging Face cache folder to {cache} (or the weights file, with SHOEBOX_CLIP_MODEL=ARCH:/path).",
                ) from exc
        else:
            raise ModelUnavailable(
                str(spec),
                f"the hub repository {files.repo_id} has none of {', '.join(missing)}",
                "Choose another model (see tagging/clip.py for the recommended ones).",
            )
    return str(Path(result).parent) if spec.kind == "hf-hub" else result


# --------------------------------------------------------------------------
# Weights digests (keys of file-based specs)
# --------------------------------------------------------------------------

_DIGESTS: dict[tuple[str, int, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()


def _file_digest(path: Path) -> str:
    """sha256 of a file's content, cached per process by path, inode, size and mtime."""
    stat = path.stat()
    cache_key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _DIGESTS_LOCK:
        if cache_key in _DIGESTS:
            return _DIGESTS[cache_key]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    with _DIGESTS_LOCK:
        _DIGESTS[cache_key] = digest.hexdigest()
    return _DIGESTS[cache_key]


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _setting(name: str, default: Any) -> Any:
    """A Django setting when Django is configured, else ``default`` (scripts, benchmarks)."""
    try:
        from django.conf import settings  # noqa: PLC0415
        from django.core.exceptions import ImproperlyConfigured  # noqa: PLC0415
    except ImportError:
        return default
    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:  # no DJANGO_SETTINGS_MODULE: not running inside Shoebox
        return default


def worker_threads() -> int:
    """Torch threads for this process: ``settings.WORKER_THREADS``, else one per core."""
    return max(1, int(_setting("WORKER_THREADS", os.cpu_count() or 1)))


class ClipModel:
    """A loaded CLIP model: image and text towers, preprocessing, tokenizer.

    Thread-safe for inference (torch modules in eval mode hold no state
    between calls). Embeddings are float32 numpy arrays, L2-normalised, of
    shape ``(n, dim)``.
    """

    def __init__(self, spec: ClipSpec, key: str, model, image_transform, tokenizer) -> None:
        import torch  # noqa: PLC0415

        self.spec = spec
        self.key = key
        self._model = model
        self._transform = image_transform
        self._tokenizer = tokenizer
        size = getattr(model.visual, "image_size", 224)
        self.image_size: int = int(max(size) if isinstance(size, (tuple, list)) else size)
        with torch.inference_mode():
            probe = model.encode_text(tokenizer([""]))
        self.dim: int = int(probe.shape[-1])
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()  # embed_query's cache, newest last
        self._queries_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ClipModel {self.key} dim={self.dim} image_size={self.image_size}>"

    @property
    def torch_model(self):
        """The underlying open_clip module (eval mode), for benchmarks and tools."""
        return self._model

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The model's own preprocessing: resize, centre crop, normalise → ``(3, H, W)`` float tensor."""
        return self._transform(image)

    def embed_tensors(self, batch: torch.Tensor) -> np.ndarray:
        """Embed an already preprocessed batch ``(n, 3, H, W)``."""
        import torch  # noqa: PLC0415

        with torch.inference_mode():
            features = self._model.encode_image(batch, normalize=True)
        return features.float().numpy()

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """Embed PIL images (any mode; converted to RGB by the preprocessing) as one batch."""
        import numpy as np  # noqa: PLC0415
        import torch  # noqa: PLC0415

        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_tensors(torch.stack([self.preprocess(image) for image in images]))

    def embed_texts(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        """Embed texts (search queries, tag names); long texts are truncated to the context length."""
        import numpy as np  # noqa: PLC0415
        import torch  # noqa: PLC0415

        if isinstance(texts, str):
            raise TypeError("embed_texts takes a list of strings, not one string")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = self._tokenizer(list(texts[start : start + batch_size]))
                chunks.append(encode_text(self._model, tokens).float().numpy())
        return np.concatenate(chunks)


    def embed_query(self, text: str) -> np.ndarray:
        """The embedding of one search text, read-only; the last ``QUERY_CACHE`` texts are remembered.

        A search is often asked again with the same words: to show its weaker
        matches, with a filter added, going back to it. Each skips the text
        encoder (15–40 ms of CPU for ViT-B-32 on the machines of BENCHMARKS.md). ``QUERY_CACHE`` = 0 turns
        the cache off.
        """
        size = int(_setting("QUERY_CACHE", 256))
        with self._queries_lock:
            vector = self._queries.get(text)
            if vector is not None:
                self._queries.move_to_end(text)
                return vector
        vector = self.embed_texts([text])[0]
        vector.setflags(write=False)
        if size > 0:
            with self._queries_lock:
                self._queries[text] = vector
                while len(self._queries) > size:
                    self._queries.popitem(last=False)
        return vector


def encode_text(model, tokens: torch.Tensor) -> torch.Tensor:
    """L2-normalised text embeddings, computing only the tokens up to each text's end.

    The tokenizer pads every text to the context length (77), but a CLIP
    text tower is causal and reads its embedding at the end-of-text token:
    nothing after that token can change the result. Cutting the batch after
    its longest text gives the same vectors (to float rounding) for a
    fraction of the work: a short query reads the tower's weights once for
    a handful of tokens instead of 77 (BENCHMARKS.md, "Search"). Towers that
    are not causal, or pool elsewhere, get the library's own ``encode_text``.
    """
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: N812, PLC0415
    from open_clip.transformer import text_global_pool  # noqa: PLC0415

    if not _trims_text(model):
        return model.encode_text(tokens, normalize=True)
    ends = tokens.argmax(dim=-1)  # the end-of-text token has the highest id in the vocabulary
    length = int(ends.max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = text_global_pool(model.ln_final(x), tokens, "argmax")
    projection = model.text_projection
    if projection is not None:
        x = projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection
    return F.normalize(x, dim=-1)


def _trims_text(model) -> bool:
    """Whether ``model``'s text tower is open_clip's causal one, pooled at the end-of-text token."""
    return (
        getattr(model, "text_pool_type", None) == "argmax"
        and getattr(model, "attn_mask", None) is not None
        and hasattr(model, "token_embedding")
        and hasattr(model, "positional_embedding")
    )


_LOADED: dict[ClipSpec, ClipModel] = {}
_LOAD_LOCK = threading.Lock()


def load(spec: ClipSpec | str | None = None) -> ClipModel:
    """The CLIP model for ``spec`` (default ``settings.CLIP_MODEL``), loaded once per process.

    A second call with the same spec returns the same object. Sets torch's
    threads to :func:`worker_threads`. Never downloads: missing weights raise
    ModelUnavailable. Models stay loaded until :func:`unload`.
    """
    if spec is None:
        spec = _setting("CLIP_MODEL", "ViT-B-32:laion2b_s34b_b79k")
    spec = _as_spec(spec)
    with _LOAD_LOCK:
        model = _LOADED.get(spec)
        if model is None:
            model = _LOADED[spec] = _load(spec)
        return model


def unload() -> None:
    """Forget every loaded model (tests; a worker keeps its model for its lifetime)."""
    with _LOAD_LOCK:
        _LOADED.clear()


def _load(spec: ClipSpec) -> ClipModel:
    check_available(spec)
    import torch  # noqa: PLC0415

    torch.set_num_threads(worker_threads())
    import open_clip  # noqa: PLC0415

    name = str(spec)
    kwargs: dict[str, Any] = {}
    if spec.kind == "local-dir":
        model_name, pretrained = LOCAL_DIR_PREFIX + spec.source, None
        tokenizer_name = model_name
    elif spec.kind == "hf-hub":
        # The cached snapshot is a local-dir folder: open_clip then reads only local files.
        snapshot = Path(_cached_file(spec.source, _HF_CONFIG_NAME, hf_hub_cache()) or "").parent
        model_name, pretrained = LOCAL_DIR_PREFIX + str(snapshot), None
        tokenizer_name = model_name
    else:
        model_name, tokenizer_name = spec.arch, spec.arch
        if spec.kind == "file":
            pretrained = spec.source
        else:
            pretrained = _cached_weights(_hub_files(spec), hf_hub_cache())
            # Passing a path skips open_clip's tag handling: apply the tag's settings here.
            cfg = open_clip.pretrained.get_pretrained_cfg(spec.arch, spec.source)
            kwargs = {
                "force_quick_gelu": bool(cfg.get("quick_gelu", False)),
                "image_mean": cfg.get("mean"),
                "image_std": cfg.get("std"),
                "image_interpolation": cfg.get("interpolation"),
                "image_resize_mode": cfg.get("resize_mode"),
            }

    from safetensors import SafetensorError  # noqa: PLC0415

    try:
        # create_model_from_pretrained sets require_pretrained=True: no random fallback.
        model, transform = open_clip.create_model_from_pretrained(model_name, pretrained, device="cpu", **kwargs)
    except (RuntimeError, ValueError, OSError, SafetensorError) as exc:
        raise ModelUnavailable(
            name, f"open_clip could not load the weights ({_first_line(exc)})", _pull_fix(spec)
        ) from exc
    model.eval()
    try:
        tokenizer = open_clip.get_tokenizer(tokenizer_name)
    except (OSError, ValueError) as exc:  # an hf-hub/local-dir folder without its tokenizer files
        raise ModelUnavailable(name, f"its tokenizer could not be loaded ({_first_line(exc)})", _pull_fix(spec)) from exc
    loaded = ClipModel(spec, spec.key, model, transform, tokenizer)
    logger.info("loaded %s (%s) with %d torch threads", loaded, spec.describe(), torch.get_num_threads())
    return loaded


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------
# The pipeline: files → vectors
# --------------------------------------------------------------------------


def decode_target(image_size: int) -> int:
    """Long edge to decode to: 2× the model input, so the short side still covers it up to 2:1."""
    return max(image_size * 2, 256)


def _decode_one(model: ClipModel, path, *, target: int, max_pixels: int) -> tuple[torch.Tensor | None, str]:
    """Decode and preprocess one file → (tensor, "") or (None, the reason it failed)."""
    from gallery.imaging import BrokenImage, SkipFile, open_upright  # noqa: PLC0415

    try:
        image = open_upright(path, target=target, max_pixels=max_pixels)
    except (BrokenImage, SkipFile) as exc:
        return None, exc.reason
    except OSError as exc:  # missing, unreadable: the file, not the image
        return None, f"cannot read the file: {exc.strerror or exc}"
    return model.preprocess(image), ""


def _prefetch(pool: ThreadPoolExecutor, work: Callable, items: Iterable, ahead: int) -> Iterator:
    """``map(work, items)`` in order, keeping ``ahead`` calls running in ``pool``."""
    pending: deque[Future] = deque()
    iterator = iter(items)
    try:
        for item in iterator:
            pending.append(pool.submit(work, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def default_decode_threads() -> int:
    """Decode threads per worker: as many as it has torch threads (measured in the module docstring)."""
    return worker_threads()


def embed_files(
    model: ClipModel,
    paths: Iterable,
    *,
    batch_size: int | None = None,
    max_pixels: int | None = None,
    decode_threads: int | None = None,
) -> Iterator[tuple[int, np.ndarray | None, str]]:
    """Embed image files: yields ``(index, vector, "")`` or ``(index, None, error)`` in input order.

    ``paths`` may be str, bytes or PathLike. ``batch_size`` defaults to
    ``settings.CLIP_BATCH``, ``max_pixels`` to ``settings.MAX_IMAGE_PIXELS``.
    Decoding runs in ``decode_threads`` threads (default
    :func:`default_decode_threads`; 0 decodes inline, without overlap) up to
    two batches ahead of inference. A file that cannot be decoded yields its
    reason and does not stop the batch. Vectors are float32, L2-normalised.
    """
    import torch  # noqa: PLC0415

    batch_size = int(batch_size or _setting("CLIP_BATCH", _DEFAULT_BATCH))
    max_pixels = int(max_pixels or _setting("MAX_IMAGE_PIXELS", _DEFAULT_MAX_PIXELS))
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    threads = default_decode_threads() if decode_threads is None else decode_threads
    work = partial(_decode_one, model, target=decode_target(model.image_size), max_pixels=max_pixels)

    def batches(decoded: Iterator[tuple[torch.Tensor | None, str]]):
        batch: list[tuple[int, torch.Tensor | None, str]] = []
        for index, (tensor, error) in enumerate(decoded):
            batch.append((index, tensor, error))
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def embed(decoded: Iterator) -> Iterator[tuple[int, np.ndarray | None, str]]:
        for batch in batches(decoded):
            good = [tensor for _, tensor, _ in batch if tensor is not None]
            vectors = iter(model.embed_tensors(torch.stack(good)) if good else ())
            for index, tensor, error in batch:
                yield (index, next(vectors), "") if tensor is not None else (index, None, error)

    if threads <= 0:
        yield from embed(map(work, paths))
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="clip-decode") as pool:
        yield from embed(_prefetch(pool, work, paths, ahead=2 * batch_size))
