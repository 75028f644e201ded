"""Caption speed: Shoebox's transformers backend vs a bare ``model.generate()``, and batching.

Builds the default caption architecture — SmolVLM-256M- or -500M-Instruct
(Idefics3: SigLIP-B/16 at 512 px, 64 image tokens per tile, SmolLM2 text
model, 49,280-token vocabulary) — from its published config values with
random weights: no weights can be downloaded here, and speed does not depend
on weight values. The tokenizer is tests/tiny_vlm's byte-level BPE trained
offline to the real vocabulary size (its merges differ from SmolLM2's, so a
prompt's text takes a few more tokens than with the real tokenizer; the 64
image tokens dominate the prompt either way).

Then, in the same run and on the same photos (real files from the shared
corpus, decoded with ``gallery.imaging.open_upright`` at
``settings.CAPTION_IMAGE_SIZE``):

* the real pipeline — ``TransformersBackend.caption`` (chat template,
  processor, generate, decode): time to first token, decode tokens/s, seconds
  per photo;
* a bare ``model.generate()`` on the same pre-processed inputs: the
  pipeline's overhead over it (goal: < 10%);
* photos per minute with one photo per ``generate()`` call and with
  ``--batch`` photos per call (left-padded).

Every call generates exactly ``--max-new-tokens`` tokens (min_new_tokens =
max_new_tokens): random weights would otherwise stop at random points.

Run: ``.venv/bin/python bench/caption_bench.py [--model-arch smolvlm-256m|smolvlm-500m]
[--photos 6] [--max-new-tokens 64] [--batch 3]``. The model folder is built once
and reused (``--model-dir``, default ``$TMPDIR/shoebox-caption-bench``).
Measured figures (2 cores, noisy neighbours) are in
shared/notes/models-on-these-machines.md; compare like with like.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported: no spin-waiting threads

import argparse  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gallery.settings")

CORPUS = ROOT.parent / "shared" / "corpus"
# The real structured-caption prompt, with the kind of context the pipeline adds.
from tagging.prompt import PhotoContext, build_prompt  # noqa: E402

PROMPT = build_prompt(PhotoContext(place="Arezzo, Tuscany, Italy", camera="NIKON D70", keywords=["summer", "piazza"]))

# SigLIP base patch-16 at 512 px (google/siglip-base-patch16-512), as in both SmolVLM sizes.
SIGLIP_B16_512 = dict(
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    image_size=512, patch_size=16,
)
# Text models from the published configs (SmolLM2-135M / -360M inside SmolVLM-256M / -500M-Instruct).
ARCHITECTURES = {
    "smolvlm-256m": dict(
        hub_id="HuggingFaceTB/SmolVLM-256M-Instruct",
        text=dict(
            hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
            num_key_value_heads=3, head_dim=64, max_position_embeddings=8192, rms_norm_eps=1e-5,
            rope_theta=100000.0,
        ),
    ),
    "smolvlm-500m": dict(
        hub_id="HuggingFaceTB/SmolVLM-500M-Instruct",
        text=dict(
            hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
            num_key_value_heads=5, head_dim=64, max_position_embeddings=8192, rms_norm_eps=1e-5,
            rope_theta=100000.0,
        ),
    ),
}
VOCAB_SIZE = 49280
SCALE_FACTOR = 4  # pixel shuffle: (512 / 16)² / 4² = 64 image tokens per tile


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-arch", choices=sorted(ARCHITECTURES), default="smolvlm-256m")
    parser.add_argument("--photos", type=int, default=6, help="photos to caption in each phase")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens generated per photo (forced)")
    parser.add_argument("--batch", type=int, default=3, help="photos per generate() call in the batching phase")
    parser.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "shoebox-caption-bench")
    return parser.parse_args()


def machine() -> str:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass  # not Linux: keep platform's answer
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"CPU: {cpu} — {os.cpu_count()} cores ({usable} usable); GPU: {gpu}\n"
        f"Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )


def pick_photos(count: int) -> list[Path]:
    """Real camera and phone JPEGs from the shared corpus, repeated if fewer than ``count``."""
    if not CORPUS.is_dir():
        sys.exit(f"the shared corpus is not at {CORPUS}")
    kinds = ("bundled_photo__", "camera_jpeg__", "phone_jpeg__", "gps__")
    names = sorted(p for p in CORPUS.iterdir() if p.suffix.lower() == ".jpg" and p.name.startswith(kinds))
    if not names:
        sys.exit(f"no photos in {CORPUS}")
    return [names[i % len(names)] for i in range(count)]


def build_model(arch: str, directory: Path) -> Path:
    from tests.tiny_vlm import build_smolvlm

    spec = ARCHITECTURES[arch]
    started = time.perf_counter()
    folder = build_smolvlm(
        directory / arch,
        vision=SIGLIP_B16_512,
        text=spec["text"],
        scale_factor=SCALE_FACTOR,
        vocab_size=VOCAB_SIZE,
        dtype="bfloat16",
    )
    print(f"model: {arch} ({spec['hub_id']} architecture, random weights) in {folder} "
          f"— ready in {time.perf_counter() - started:.1f} s")
    return folder


def main() -> None:
    args = parse_args()
    if args.photos < 1 or args.max_new_tokens < 2 or args.batch < 2:
        sys.exit("--photos must be >= 1, --max-new-tokens >= 2 and --batch >= 2")
    import torch
    from django.conf import settings

    from gallery.imaging import open_upright
    from tagging.vlm.base import CaptionRequest
    from tagging.vlm.transformers_backend import TransformersBackend, cpu_supports_bf16

    print(machine())
    folder = build_model(args.model_arch, args.model_dir)
    tokens = args.max_new_tokens

    paths = pick_photos(args.photos)
    started = time.perf_counter()
    images = [open_upright(p, target=settings.CAPTION_IMAGE_SIZE, max_pixels=settings.MAX_IMAGE_PIXELS) for p in paths]
    decode_s = (time.perf_counter() - started) / len(images)
    requests = [CaptionRequest(image=image, prompt=PROMPT) for image in images]

    backend = TransformersBackend(str(folder), max_new_tokens=tokens, min_new_tokens=tokens, dtype=args.dtype)
    started = time.perf_counter()
    loaded = backend.loaded
    load_s = time.perf_counter() - started
    model = loaded.model
    print(f"device {loaded.device}, dtype {loaded.dtype} (CPU bf16: {'yes' if cpu_supports_bf16() else 'no'}), "
          f"torch threads {torch.get_num_threads()}, "
          f"load {load_s:.1f} s, photo decode {decode_s * 1000:.0f} ms/photo at {settings.CAPTION_IMAGE_SIZE} px")
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"{params:.0f} M parameters; {args.photos} photos × {tokens} new tokens each\n")

    backend.caption(requests[:1])  # warm-up: one-time kernel selection and allocations

    # Phase 1: pipeline vs bare generate(), one photo per call, alternating which goes first.
    pipeline, bare, first_tokens, decode_rates, preprocess = [], [], [], [], []
    prompt_tokens = None
    for i, request in enumerate(requests):
        t = time.perf_counter()
        inputs = backend.prepare([request])
        preprocess.append(time.perf_counter() - t)
        kwargs = backend.generate_kwargs()

        def run_bare():
            t = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(**inputs, **kwargs)
            if loaded.device.startswith("cuda"):
                torch.cuda.synchronize()
            assert out.shape[1] - inputs["input_ids"].shape[1] == tokens
            return time.perf_counter() - t

        def run_pipeline():
            t = time.perf_counter()
            output = backend.caption([request])[0]
            assert output.output_tokens == tokens, output.output_tokens
            return time.perf_counter() - t, output

        if i % 2:
            bare.append(run_bare())
            seconds, output = run_pipeline()
        else:
            seconds, output = run_pipeline()
            bare.append(run_bare())
        pipeline.append(seconds)
        first_tokens.append(output.first_token_latency)
        decode_rates.append((tokens - 1) / (output.latency - output.first_token_latency))
        prompt_tokens = output.prompt_tokens

    med = statistics.median
    # Paired per photo (each pair ran back to back), so drift from other load cancels.
    overhead = med([p / b - 1 for p, b in zip(pipeline, bare)])
    print(f"prompt: {prompt_tokens} tokens (the structured-caption prompt; one 512 px tile = 64 image tokens); "
          f"chat template + processor {med(preprocess) * 1000:.0f} ms/photo")
    print(f"pipeline (TransformersBackend.caption), batch 1:  time to first token {med(first_tokens):.2f} s, "
          f"decode {med(decode_rates):.1f} tok/s, {med(pipeline):.2f} s/photo (median)")
    print(f"bare model.generate() on pre-processed inputs:   {med(bare):.2f} s/photo (median); "
          f"pipeline overhead {overhead * 100:+.1f}% (median of pairs; goal < 10%)")

    # Phase 2: several photos per generate() call.
    started = time.perf_counter()
    for start in range(0, len(requests), args.batch):
        outputs = backend.caption(requests[start:start + args.batch])
        assert all(o.output_tokens == tokens for o in outputs)
    batched_s = time.perf_counter() - started
    single_ppm = 60 * len(requests) / sum(pipeline)
    batched_ppm = 60 * len(requests) / batched_s
    print(f"photos/minute: batch 1 {single_ppm:.1f}, batch {args.batch} {batched_ppm:.1f} "
          f"({(batched_ppm / single_ppm - 1) * 100:+.0f}%)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
