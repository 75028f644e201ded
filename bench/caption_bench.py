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

``--two-pass`` measures what a library costs instead (issue 12): with one
torch thread per process, as each of the two workers on a 2-core machine
runs (``SHOEBOX_WORKER_THREADS``), the CPU seconds per photo
(``time.process_time``: other processes on a shared machine do not inflate
it, as they do wall time) of

* the first pass (``prompt.build_first_pass_prompt``, ``--first-tokens``
  forced, ``SHOEBOX_CAPTION_BATCH`` photos per call),
* the full description (``prompt.build_prompt``, ``--full-tokens`` forced),

then photos/hour on 2 cores (two single-threaded workers), the full
descriptions a library needs once near-duplicate groups share one
(``near_duplicates.group_pairs`` on a simulated library with bursts, at
several burst rates), and the projected days for a 50,000-photo library.

Run: ``.venv/bin/python bench/caption_bench.py [--model-arch smolvlm-256m|smolvlm-500m]
[--photos 6] [--max-new-tokens 64] [--batch 3]`` or ``… --two-pass [--first-tokens 64]
[--full-tokens 250] [--library 50000]``. The model folder is built once
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
    parser.add_argument("--two-pass", action="store_true", help="first pass vs full description, and a library's cost")
    parser.add_argument("--first-tokens", type=int, default=64, help="tokens per first-pass caption (forced)")
    parser.add_argument("--full-tokens", type=int, default=250, help="tokens per full description (forced)")
    parser.add_argument("--library", type=int, default=50_000, help="photos in the projected library")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (two-pass mode)")
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
    if args.two_pass:
        return two_pass(args)
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


# -- two passes and a library's cost ---------------------------------------------------------

# Burst rates: the share of a library's photos that have a near-duplicate (bursts, edits, re-saves).
# Phone libraries measured by photo-management studies sit around a third; a burst-heavy
# (sports, children, pets) library goes past half.
BURST_RATES = (0.0, 0.2, 0.35, 0.5)
MEAN_BURST = 3.0  # photos per near-duplicate group (geometric sizes, at least 2)


def simulated_pairs(photos: int, burst_rate: float, seed: int = 12) -> list[tuple[int, int]]:
    """Near-duplicate pairs of a library where ``burst_rate`` of the photos sit in bursts.

    Bursts are consecutive ids with sizes ≥ 2 drawn from a geometric
    distribution of mean ``MEAN_BURST``; each shot pairs with the next (a chain,
    as near_duplicates.find_pairs finds a burst), the rest are singles.
    """
    import random

    rng = random.Random(seed)
    starts = burst_rate / (burst_rate + MEAN_BURST * (1 - burst_rate))  # so that bursts hold burst_rate of photos
    pairs, pk = [], 0
    while pk < photos:
        if rng.random() < starts:
            size = 2
            while rng.random() < (MEAN_BURST - 2) / (MEAN_BURST - 1) and size < 40:
                size += 1
            size = min(size, photos - pk)
            pairs += [(pk + i, pk + i + 1) for i in range(size - 1)]
            pk += size
        else:
            pk += 1
    return pairs


def cpu_per_photo(backend, requests, batch: int, tokens: int) -> tuple[float, float, int]:
    """(CPU seconds per photo, wall seconds per photo, prompt tokens) captioning ``requests`` ``batch`` at a time."""
    cpu, wall = time.process_time(), time.perf_counter()
    prompt_tokens = 0
    for start in range(0, len(requests), batch):
        outputs = backend.caption(requests[start:start + batch])
        assert all(o.output_tokens == tokens for o in outputs), [o.output_tokens for o in outputs]
        prompt_tokens = outputs[0].prompt_tokens
    n = len(requests)
    return (time.process_time() - cpu) / n, (time.perf_counter() - wall) / n, prompt_tokens


def two_pass(args) -> None:
    import django
    import torch

    django.setup()  # near_duplicates' models; no database is opened
    from django.conf import settings

    from gallery.imaging import open_upright
    from tagging import near_duplicates
    from tagging.prompt import build_first_pass_prompt
    from tagging.vlm.base import CaptionRequest
    from tagging.vlm.transformers_backend import TransformersBackend

    torch.set_num_threads(args.threads)
    settings.WORKER_THREADS = args.threads  # the backend sets torch's threads from it when it loads
    print(machine())
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes share these cores)")
    folder = build_model(args.model_arch, args.model_dir)
    batch = max(1, settings.CAPTION_BATCH)
    context = PhotoContext(place="Arezzo, Tuscany, Italy", camera="NIKON D70", keywords=["summer", "piazza"])
    images = [open_upright(p, target=settings.CAPTION_IMAGE_SIZE, max_pixels=settings.MAX_IMAGE_PIXELS)
              for p in pick_photos(args.photos)]
    first_prompt = build_first_pass_prompt(context)
    figures = {}
    for name, prompt_text, tokens in (("prefill alone", first_prompt, 1),
                                      ("first pass", first_prompt, args.first_tokens),
                                      ("full description", PROMPT, args.full_tokens)):
        backend = TransformersBackend(str(folder), max_new_tokens=tokens, min_new_tokens=tokens, dtype=args.dtype)
        backend.caption([CaptionRequest(image=images[0], prompt=prompt_text)])  # warm-up
        # The full description is long: one call's worth of photos is enough to time it.
        chosen = images[:batch] if name == "full description" else images
        requests = [CaptionRequest(image=image, prompt=prompt_text, max_new_tokens=tokens) for image in chosen]
        cpu, wall, prompt_tokens = cpu_per_photo(backend, requests, batch, tokens)
        figures[name] = cpu
        per_hour = 2 * 3600 / cpu
        print(f"{name}: prompt {prompt_tokens} tokens, {tokens} new tokens, batch {batch}, "
              f"{torch.get_num_threads()} thread: {cpu:.2f} CPU s/photo ({wall:.2f} s wall) "
              f"→ {per_hour:,.0f} photos/hour on 2 cores (two single-threaded workers)")
        del backend
    first, full, fixed = figures["first pass"], figures["full description"], figures["prefill alone"]
    per_token = (first - fixed) / (args.first_tokens - 1)
    print(f"\nfull description / first pass: {full / first:.1f}× the CPU per photo")
    print(f"first pass = {fixed:.2f} CPU s fixed (image encoder + prompt prefill, 1 token) + "
          f"{per_token * 1000:.0f} ms per new token (batch {batch})")
    target = 2 * 24 * 3600 / args.library  # CPU seconds per photo for the whole library in 24 h on 2 cores
    room = (target - fixed) / per_token
    print(f"24 h for {args.library:,} photos needs ≤ {target:.2f} CPU s/photo: "
          + (f"a budget of ≤ {room:.0f} new tokens would do" if room >= 1 else
             f"not reachable by a smaller budget (the fixed part alone is {fixed / target:.1f}× that)"))
    print(f"{args.library:,}-photo library, 2 cores:")
    first_hours = args.library * first / 2 / 3600
    print(f"  first pass for every photo: {first_hours:.1f} h ({'within' if first_hours <= 24 else 'over'} 24 h)")
    for rate in BURST_RATES:
        groups = near_duplicates.group_pairs(simulated_pairs(args.library, rate))
        members = sum(len(g) for g in groups)
        needed = args.library - members + len(groups)
        hours = needed * full / 2 / 3600
        print(f"  burst rate {rate:.0%}: {len(groups):,} near-duplicate groups holding {members:,} photos → "
              f"{needed:,} full descriptions ({1 - needed / args.library:.0%} reused), {hours:.0f} h = "
              f"{hours / 24:.1f} days of idle machine")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
