"""Tiny SmolVLM (Idefics3) models built offline, for tests and benchmarks.

No machine of this project can download weights, so tests exercise the real
transformers and mlx-vlm loading and generation code on a model with the real
architecture, a real byte-level BPE tokenizer trained here in a fraction of a
second, and random weights from a fixed seed. Random weights say nothing about
content: tests built on these models assert structure, token counts, timings
and state — never words. Never use such a model outside tests and benchmarks.

The folder written by :func:`build_smolvlm` is an ordinary ``save_pretrained``
folder (config, safetensors, tokenizer, processor, chat template) that both
``AutoModelForImageTextToText.from_pretrained`` and ``mlx_vlm.load`` accept.
The recipe and its pitfalls are in ``shared/notes/models-on-these-machines.md``:

* keep the model's vocabulary exactly the tokenizer's size (mlx-vlm's
  streaming detokenizer raises ``IndexError`` on ids past the tokenizer);
* a vision tower's ``hidden_size`` must be at least its ``patch_size``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# The chat template SmolVLM ships (transformers' smolvlm DEFAULT_CHAT_TEMPLATE).
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# SmolLM2's first three ids, then the tokens Idefics3's processor looks up.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    *[f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)],
]

TINY_VISION = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
    image_size=64, patch_size=16,
)
TINY_TEXT = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=100000.0,
)

# What every complete folder holds; a folder missing one is rebuilt.
_COMPLETE = ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json", "shoebox_tiny_vlm.json")

_WORDS = (
    "a the photo of with and in on at by dog cat tree sky sea beach mountain city street night day "
    "people person child man woman red green blue yellow white black small large old new two three "
    "standing sitting walking holding looking car bicycle boat house window door table chair food "
    "light shadow sunset snow rain flower garden field road bridge river lake park building wall"
).split()


def _corpus(lines: int, *, seed: int, vocab_size: int) -> list[str]:
    """Training text: chat-like English, plus pseudo-words when a large vocabulary must be reachable."""
    rng = random.Random(seed)
    text = [
        "User: Describe this photo in detail.\nAssistant: " + " ".join(rng.choices(_WORDS, k=12)) + "."
        for _ in range(lines)
    ]
    if vocab_size > 2000:
        # Real text this short cannot yield tens of thousands of merges: add
        # pseudo-words so BPE can reach a real model's vocabulary size.
        letters = "abcdefghijklmnopqrstuvwxyz"
        for _ in range(vocab_size // 2):
            text.append(" ".join("".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(6)))
    return text


def _ascii_alphabet() -> list[str]:
    """Byte-level symbols of printable ASCII, tab and newline (GPT-2's byte-to-unicode map).

    Only these bytes are in the vocabulary, so any sequence of token ids —
    even random weights' — decodes to valid text, and every decoder (transformers',
    mlx-vlm's streaming one) gives the same string.
    """
    def symbol(byte: int) -> str:
        return chr(byte) if 33 <= byte <= 126 else chr(256 + byte)  # 0–32 map to 256 + byte

    return [symbol(b) for b in (9, 10, *range(32, 127))]


def train_bpe(vocab_size: int, special_tokens: list[str], *, seed: int = 0):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained offline; ``special_tokens`` get the first ids, in order."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=_ascii_alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(200, seed=seed, vocab_size=vocab_size), trainer=trainer)
    return tokenizer


def build_tokenizer(vocab_size: int = 400, *, seed: int = 0):
    """A byte-level BPE tokenizer with SmolVLM's special tokens, trained offline.

    Returns a ``PreTrainedTokenizerFast`` carrying SmolVLM's chat template,
    ``<end_of_utterance>`` as its end-of-sequence token and
    ``<|im_end|>`` as padding. ``len(tokenizer) == vocab_size`` whenever the
    corpus allows that many merges (it does for ~400 and for ~49k).
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(vocab_size, SPECIAL_TOKENS, seed=seed),
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
        chat_template=SMOLVLM_CHAT_TEMPLATE,
        model_max_length=8192,
    )


def build_smolvlm(
    directory: Path,
    *,
    vision: dict | None = None,
    text: dict | None = None,
    scale_factor: int = 2,
    vocab_size: int = 400,
    image_splitting: bool = True,
    seed: int = 0,
    dtype: str = "float32",
) -> Path:
    """Write an Idefics3 (SmolVLM) model with random weights to ``directory``.

    ``vision`` and ``text`` override the tiny defaults (``TINY_VISION``,
    ``TINY_TEXT``); a real architecture's values give a model of real size and
    speed. The image processor is saved with ``do_image_splitting`` as given —
    True, as SmolVLM ships it — so callers that want one tile must turn it off.
    Reuses the folder if a complete build with the same recipe is already there.
    """
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    directory = Path(directory)
    vision = {**TINY_VISION, **(vision or {})}
    text = {**TINY_TEXT, **(text or {})}
    if vision["hidden_size"] < vision["patch_size"]:
        raise ValueError("the vision tower's hidden_size must be at least its patch_size (mlx-vlm requires it)")
    recipe = dict(vision=vision, text=text, scale_factor=scale_factor, vocab_size=vocab_size,
                  image_splitting=image_splitting, seed=seed, dtype=dtype)
    marker = directory / "shoebox_tiny_vlm.json"
    if all((directory / name).is_file() for name in _COMPLETE) and json.loads(marker.read_text()) == recipe:
        return directory

    directory.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    tokenizer = build_tokenizer(vocab_size, seed=seed)
    end_of_utterance = tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    pad = tokenizer.convert_tokens_to_ids("<|im_end|>")
    image_size, patch_size = vision["image_size"], vision["patch_size"]
    image_seq_len = (image_size // patch_size) ** 2 // scale_factor**2

    config = Idefics3Config(
        vision_config=vision,
        text_config=dict(
            model_type="llama",
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=end_of_utterance,
            pad_token_id=pad,
            **text,
        ),
        scale_factor=scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,
        eos_token_id=end_of_utterance,
        pad_token_id=pad,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).to(getattr(torch, dtype)).eval()
    model.generation_config.eos_token_id = end_of_utterance
    model.generation_config.pad_token_id = pad
    model.generation_config.bos_token_id = tokenizer.bos_token_id

    image_processor = Idefics3ImageProcessor(
        do_image_splitting=image_splitting,
        size={"longest_edge": 4 * image_size},
        max_image_size={"longest_edge": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    _add_legacy_rope_theta(directory / "config.json")
    marker.write_text(json.dumps(recipe, sort_keys=True))
    return directory


def _add_legacy_rope_theta(config_path: Path) -> None:
    """Write ``text_config.rope_theta`` as hub checkpoints do.

    transformers 5 saves RoPE settings only under ``rope_parameters``; mlx-vlm's
    Idefics3 config reads the top-level ``rope_theta`` and otherwise assumes
    1,000,000 — a silently different model (SmolVLM uses 100,000).
    """
    config = json.loads(config_path.read_text())
    text = config["text_config"]
    text["rope_theta"] = text.get("rope_parameters", {}).get("rope_theta", text.get("rope_theta"))
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def build_tiny_smolvlm(directory: Path) -> Path:
    """The test model: a 2-layer SmolVLM, 64 px images, 4 image tokens, ~400-token vocabulary.

    Builds in well under a second; reuses ``directory`` when it already holds
    a complete build.
    """
    return build_smolvlm(directory)


def synthetic_photo(width: int, height: int, *, seed: int = 0, noise: float = 12.0):
    """An RGB image of smooth gradients plus Gaussian ``noise`` (pixel std), so resizing does real work."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, size=3)
    channels = [128 + 90 * np.sin(x / (17 + 9 * c) + phase[c]) * np.cos(y / (23 + 7 * c)) for c in range(3)]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, noise, size=(height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
