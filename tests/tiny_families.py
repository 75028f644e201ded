"""Tiny random-weight models of every caption model family the README names, built offline.

Each builder writes an ordinary ``save_pretrained`` folder — config, safetensors,
a byte-level BPE tokenizer trained here (``tests.tiny_vlm.train_bpe``) carrying
the family's own special tokens and chat template, and the family's own
processor — for the real transformers architecture with two small layers,
laid out as the hub's checkpoints are (``_hub_layout``: Qwen's flat configs,
``vision_tower.vision_model.*`` keys, legacy ``rope_theta``), because that is what
mlx-vlm reads. ``TransformersBackend`` loads such a folder exactly as it loads a
real checkpoint, and mlx-vlm loads the ones it supports (``Family.mlx`` says why
not for the others).

Where random weights would make a family degenerate (tied embeddings repeating
the last token, zero-initialised cross-attention gates ignoring the image,
<loc> tokens crowding out text), the builder says what it changed and why.

Random weights say nothing about content: tests built on these models assert
structure, token counts and storage, never words. Never use them outside tests
and benchmarks.

Sizes are picked so that every family builds in well under a second and
generates a few tokens in a fraction of one; where a family's image processor
decides how many image tokens a photo costs (Qwen2-VL's pixel budget,
LLaVA-NeXT's grid, Mllama's tiles), it is kept to a handful.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.tiny_vlm import build_smolvlm, train_bpe

VOCAB = 400
# A small decoder shared by the families whose text model is Llama/Qwen-like.
TEXT = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-5,
)
_MARKER = "shoebox_tiny_family.json"


@dataclass(frozen=True)
class Family:
    """One model family: how to build its tiny model, and what Shoebox can do with it."""

    name: str  # the id used in tests and the README
    label: str  # as the README names it
    model_type: str  # config.json's model_type
    build: Callable[[Path], None]
    structured: bool = True  # takes Shoebox's JSON prompt through a chat template (False: a task prompt, prose)
    mlx: str | None = None  # why mlx-vlm 0.7.10 cannot run it (None: it can, on a Linux CPU too)


def _tokenizer(special: list[str], *, bos: str | None, eos: str, pad: str, unk: str | None = None,
               chat_template: str | None = None, extra: dict | None = None, vocab_size: int = VOCAB):
    from transformers import PreTrainedTokenizerFast

    named = {bos, eos, pad, unk} - {None}
    return PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(vocab_size, special),
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token=unk,
        additional_special_tokens=[t for t in special if t not in named],
        chat_template=chat_template,
        model_max_length=8192,
        **(extra or {}),
    )


def _save(model, processor, directory: Path, *, eos: int, pad: int, bos: int | None) -> None:
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.generation_config.bos_token_id = bos
    model.save_pretrained(directory)
    processor.save_pretrained(directory)


def _hub_layout(directory: Path, *, weights: dict[str, str] | None = None, config=None) -> None:
    """Rewrite a saved folder the way the hub's checkpoints are laid out, which mlx-vlm expects.

    ``weights`` maps key prefixes (``vision_tower.`` → ``vision_tower.vision_model.``: the CLIP and
    SigLIP towers of llava-hf and google checkpoints); ``config(dict)`` edits config.json in place
    (legacy top-level keys). transformers loads both layouts alike (the family tests check it).
    """
    if weights:
        from safetensors.torch import load_file, save_file

        path = directory / "model.safetensors"
        tensors = load_file(path)
        renamed = {}
        for key, tensor in tensors.items():
            for old, new in weights.items():
                if key.startswith(old) and not key.startswith(new):
                    key = new + key[len(old):]
                    break
            renamed[key] = tensor
        save_file(renamed, path, metadata={"format": "pt"})
    if config:
        path = directory / "config.json"
        data = json.loads(path.read_text())
        config(data)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _ids(tokenizer, *tokens: str) -> list[int]:
    ids = tokenizer.convert_tokens_to_ids(list(tokens))
    missing = [t for t, i in zip(tokens, ids) if i is None or (i == tokenizer.unk_token_id and t != tokenizer.unk_token)]
    if missing:
        raise ValueError(f"the tokenizer lacks {missing}")
    return ids


# --- Qwen2-VL / Qwen2.5-VL ----------------------------------------------------------------

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
]


def _build_qwen(directory: Path, *, v25: bool) -> None:
    import torch
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    if v25:
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model
        from transformers import Qwen2_5_VLProcessor as Processor
    else:
        from transformers import Qwen2VLConfig as Config
        from transformers import Qwen2VLForConditionalGeneration as Model
        from transformers import Qwen2VLProcessor as Processor

    tok = _tokenizer(QWEN_SPECIAL, bos=None, eos="<|im_end|>", pad="<|endoftext|>", chat_template=QWEN_CHAT_TEMPLATE)
    eos, pad, start, end, image, video = _ids(
        tok, "<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
    )
    vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2)
    if v25:
        vision = dict(depth=2, hidden_size=32, out_hidden_size=64, intermediate_size=64, num_heads=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1])
    # head_dim 16: the three M-RoPE sections (time, height, width) share its 8 frequencies.
    text = dict(TEXT, vocab_size=len(tok), rope_parameters=dict(rope_type="default", rope_theta=1e6,
                mrope_section=[2, 3, 3]), eos_token_id=eos, pad_token_id=pad, bos_token_id=None)
    config = Config(text_config=text, vision_config=vision, image_token_id=image, video_token_id=video,
                    vision_start_token_id=start, vision_end_token_id=end, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = Model(config).eval()
    # A pixel budget of at most 4×4 patches of 28 px after merging: 4–16 image tokens per photo.
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14, merge_size=2,
                                            temporal_patch_size=2)
    processor = Processor(image_processor=image_processor, tokenizer=tok, video_processor=Qwen2VLVideoProcessor(),
                          chat_template=QWEN_CHAT_TEMPLATE)
    _save(model, processor, directory, eos=eos, pad=pad, bos=None)
    _hub_layout(directory, config=_flat_qwen_config)


def _flat_qwen_config(config: dict) -> None:
    """Qwen's hub configs keep the text model's keys at the top, with RoPE as ``rope_theta`` and an
    ``mrope`` ``rope_scaling`` (mlx-vlm reads only that form)."""
    text = config.pop("text_config")
    rope = text.pop("rope_parameters")
    for key, value in text.items():
        if key != "model_type":
            config.setdefault(key, value)
    config["rope_theta"] = rope["rope_theta"]
    config["rope_scaling"] = {"type": "mrope", "mrope_section": rope["mrope_section"]}
    config["vision_config"].pop("model_type", None)  # the hub's vision configs name none


# --- LLaVA-NeXT (LLaVA 1.6) ---------------------------------------------------------------

# llava-v1.6-mistral-7b-hf's template: [INST] <image>\nprompt [/INST]
LLAVA_NEXT_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}[INST] "
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}<image>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %} [/INST]"
    "{% else %}{% for content in message['content'] %}{{ content['text'] }}{% endfor %}{{ eos_token }}"
    "{% endif %}{% endfor %}"
)
LLAMA_SPECIAL = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]


def _build_llava_next(directory: Path) -> None:
    import torch
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextImageProcessor, \
        LlavaNextProcessor

    tok = _tokenizer(LLAMA_SPECIAL, bos="<s>", eos="</s>", pad="<pad>", unk="<unk>",
                     chat_template=LLAVA_NEXT_CHAT_TEMPLATE, extra=dict(image_token="<image>"))
    bos, eos, pad, image = _ids(tok, "<s>", "</s>", "<pad>", "<image>")
    # A CLIP tower on 32 px tiles of 8 px patches (16 patches + CLS); any-resolution grids up to 2×2 tiles.
    vision = dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32)
    pinpoints = [[32, 64], [64, 32], [64, 64]]
    config = LlavaNextConfig(
        vision_config=vision,
        text_config=dict(TEXT, model_type="llama", vocab_size=len(tok), bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=pad),
        image_token_index=image, image_grid_pinpoints=pinpoints, vision_feature_layer=-2,
        vision_feature_select_strategy="default", image_seq_length=16, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlavaNextForConditionalGeneration(config).eval()
    image_processor = LlavaNextImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                              image_grid_pinpoints=pinpoints)
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=LLAVA_NEXT_CHAT_TEMPLATE)
    _save(model, processor, directory, eos=eos, pad=pad, bos=bos)
    _hub_layout(directory, weights={"vision_tower.": "vision_tower.vision_model."})


# --- PaliGemma ---------------------------------------------------------------------------

GEMMA_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"]


def _build_paligemma(directory: Path) -> None:
    """PaliGemma: a SigLIP tower (64 px, 16 patches = 16 image tokens) and a Gemma decoder; no chat template."""
    import torch
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, \
        SiglipImageProcessor

    tok = _tokenizer(GEMMA_SPECIAL, bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>",
                     extra=dict(extra_special_tokens={"image_token": "<image>"}))
    image_processor = SiglipImageProcessor(size={"height": 64, "width": 64}, image_mean=[0.5] * 3,
                                           image_std=[0.5] * 3)
    image_processor.image_seq_length = 16
    # The processor adds PaliGemma's <loc…>/<seg…> tokens: the model's vocabulary follows the tokenizer's.
    text_vocab = len(tok)
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)
    tok = processor.tokenizer
    bos, eos, pad, image = _ids(tok, "<bos>", "<eos>", "<pad>", "<image>")
    config = PaliGemmaConfig(
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2, image_size=64, patch_size=16,
                           projection_dim=64, vision_use_head=False),
        text_config=dict(model_type="gemma", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                         max_position_embeddings=4096, bos_token_id=bos, eos_token_id=eos, pad_token_id=pad),
        image_token_index=image, projection_dim=64, hidden_size=64, vocab_size=len(tok),
        tie_word_embeddings=True, bos_token_id=bos, eos_token_id=eos, pad_token_id=pad,
    )
    torch.manual_seed(0)
    model = PaliGemmaForConditionalGeneration(config).eval()
    with torch.no_grad():
        # Gemma scales its input embeddings by sqrt(hidden_size) and ties them to the output: with random
        # weights of the usual size the last token's embedding dominates and the model repeats it
        # forever. Quieter embeddings let the layers, not the last token, decide.
        embeddings = model.get_input_embeddings().weight
        embeddings.mul_(0.01)
        # Random weights would pick one of the 1,152 <loc>/<seg> tokens most of the time: keep them
        # quieter still so that, as in a real captioning model, text wins.
        embeddings[text_vocab:] *= 0.1
    _save(model, processor, directory, eos=eos, pad=pad, bos=bos)
    _hub_layout(directory, weights={"vision_tower.": "vision_tower.vision_model."})


# --- Florence-2 ---------------------------------------------------------------------------

BART_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<image>", "<MORE_DETAILED_CAPTION>", "<DETAILED_CAPTION>",
                "<CAPTION>"]


def _build_florence2(directory: Path) -> None:
    """Florence-2: a DaViT tower (64 px → 2×2 features + a pooled one = 5 image tokens) and a BART
    encoder-decoder. No chat template: it answers task tokens such as <MORE_DETAILED_CAPTION>."""
    import torch
    from transformers import CLIPImageProcessor, Florence2Config, Florence2ForConditionalGeneration, \
        Florence2Processor

    tok = _tokenizer(BART_SPECIAL, bos="<s>", eos="</s>", pad="<pad>", unk="<unk>",
                     extra=dict(extra_special_tokens={"image_token": "<image>"}))
    bos, eos, pad, image = _ids(tok, "<s>", "</s>", "<pad>", "<image>")
    config = Florence2Config(
        vision_config=dict(depths=[1, 1, 1, 1], embed_dim=[16, 32, 32, 64], num_heads=[1, 2, 2, 4],
                           num_groups=[1, 2, 2, 4], window_size=2, projection_dim=64, drop_path_rate=0.0),
        text_config=dict(model_type="bart", vocab_size=len(tok), d_model=64, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                         decoder_ffn_dim=128, max_position_embeddings=1024, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=pad, decoder_start_token_id=eos, forced_eos_token_id=eos,
                         tie_word_embeddings=False),
        # Untied: with tied embeddings a random decoder answers its start token </s> (= the end) at once.
        image_token_id=image, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Florence2ForConditionalGeneration(config).eval()
    image_processor = CLIPImageProcessor(size={"height": 64, "width": 64}, crop_size={"height": 64, "width": 64},
                                         do_center_crop=False, image_mean=[0.485, 0.456, 0.406],
                                         image_std=[0.229, 0.224, 0.225])
    image_processor.image_seq_length = 5
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tok,
                                   post_processor_config={"pure_text": {}})
    model.generation_config.decoder_start_token_id = eos
    _save(model, processor, directory, eos=eos, pad=pad, bos=bos)


# --- SmolVLM2 ----------------------------------------------------------------------------


def _build_smolvlm2(directory: Path) -> None:
    """SmolVLM2: Idefics3's recipe under its own classes (model_type "smolvlm"), with a video processor."""
    import torch
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessor, \
        SmolVLMProcessor, SmolVLMVideoProcessor

    from tests.tiny_vlm import SMOLVLM_CHAT_TEMPLATE, TINY_TEXT, TINY_VISION, build_tokenizer

    tok = build_tokenizer(VOCAB)
    eos, pad, image = _ids(tok, "<end_of_utterance>", "<|im_end|>", "<image>")
    config = SmolVLMConfig(
        vision_config=TINY_VISION,
        text_config=dict(TINY_TEXT, model_type="llama", vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                         eos_token_id=eos, pad_token_id=pad),
        scale_factor=2, image_token_id=image, tie_word_embeddings=False, eos_token_id=eos, pad_token_id=pad,
    )
    torch.manual_seed(0)
    model = SmolVLMForConditionalGeneration(config).eval()
    image_processor = SmolVLMImageProcessor(do_image_splitting=False, size={"longest_edge": 64},
                                            max_image_size={"longest_edge": 64}, image_mean=[0.5] * 3,
                                            image_std=[0.5] * 3)
    video_processor = SmolVLMVideoProcessor(size={"longest_edge": 64}, max_image_size={"longest_edge": 64})
    processor = SmolVLMProcessor(image_processor=image_processor, tokenizer=tok, video_processor=video_processor,
                                 image_seq_len=4, chat_template=SMOLVLM_CHAT_TEMPLATE)
    _save(model, processor, directory, eos=eos, pad=pad, bos=tok.bos_token_id)


# --- InternVL3 (-hf) -----------------------------------------------------------------------

INTERNVL_CHAT_TEMPLATE = QWEN_CHAT_TEMPLATE.replace("<|vision_start|><|image_pad|><|vision_end|>", "<IMG_CONTEXT>\n")
INTERNVL_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]


def _build_internvl(directory: Path, *, decoder: str = "qwen2") -> None:
    """InternVL3 as the ``-hf`` checkpoints ship it: an InternViT tower (56 px, 16 patches, pixel-shuffled
    to 4 image tokens between <img> and </img>) and a Qwen2 decoder (InternVL3.5: a Qwen3 one)."""
    import torch
    from transformers import GotOcr2ImageProcessor, InternVLConfig, InternVLForConditionalGeneration, \
        InternVLProcessor, InternVLVideoProcessor

    tok = _tokenizer(INTERNVL_SPECIAL, bos=None, eos="<|im_end|>", pad="<|endoftext|>",
                     chat_template=INTERNVL_CHAT_TEMPLATE,
                     extra=dict(extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                                                      "context_image_token": "<IMG_CONTEXT>",
                                                      "video_token": "<video>"}))
    eos, pad, context = _ids(tok, "<|im_end|>", "<|endoftext|>", "<IMG_CONTEXT>")
    config = InternVLConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=[56, 56], patch_size=[14, 14]),
        text_config=dict(TEXT, model_type=decoder, vocab_size=len(tok), eos_token_id=eos, pad_token_id=pad,
                         bos_token_id=None, tie_word_embeddings=False, head_dim=16),
        image_token_id=context, image_seq_length=4, downsample_ratio=0.5, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = InternVLForConditionalGeneration(config).eval()
    image_processor = GotOcr2ImageProcessor(size={"height": 56, "width": 56}, crop_to_patches=False,
                                            image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    processor = InternVLProcessor(image_processor=image_processor, tokenizer=tok,
                                  video_processor=InternVLVideoProcessor(size={"height": 56, "width": 56}),
                                  image_seq_length=4, chat_template=INTERNVL_CHAT_TEMPLATE)
    _save(model, processor, directory, eos=eos, pad=pad, bos=None)
    _hub_layout(directory, config=_legacy_rope_theta)


def _legacy_rope_theta(config: dict) -> None:
    """``text_config.rope_theta`` as hub checkpoints write it (mlx-vlm requires it)."""
    text = config["text_config"]
    text["rope_theta"] = text.get("rope_parameters", {}).get("rope_theta", 1e6)


# --- Llama 3.2 Vision (Mllama) ------------------------------------------------------------

MLLAMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}<|image|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
MLLAMA_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                  "<|image|>", "<|python_tag|>", "<|finetune_right_pad_id|>"]


def _build_mllama(directory: Path) -> None:
    """Llama 3.2 Vision: a tiled vision encoder (28 px tiles of 14 px patches, up to 4 tiles) whose
    output the Llama decoder reads through cross-attention layers, not as image tokens."""
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessor, MllamaProcessor

    tok = _tokenizer(MLLAMA_SPECIAL, bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<|finetune_right_pad_id|>",
                     chat_template=MLLAMA_CHAT_TEMPLATE)
    bos, eos, end, pad, image = _ids(tok, "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>",
                                     "<|finetune_right_pad_id|>", "<|image|>")
    config = MllamaConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_global_layers=1,
                           attention_heads=2, image_size=28, patch_size=14, max_num_tiles=4,
                           intermediate_layers_indices=[0], vision_output_dim=64,
                           supported_aspect_ratios=[[1, 1], [1, 2], [2, 1], [1, 3], [3, 1], [1, 4], [2, 2], [4, 1]]),
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, cross_attention_layers=[1],
                         max_position_embeddings=4096, rope_parameters=dict(rope_type="default", rope_theta=5e5),
                         bos_token_id=bos, eos_token_id=[eos, end], pad_token_id=pad),
        image_token_index=image,
    )
    torch.manual_seed(0)
    model = MllamaForConditionalGeneration(config).eval()
    # Its cross-attention gates start at zero (the decoder ignores the image until trained): open them.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
                parameter.fill_(1.0)
    image_processor = MllamaImageProcessor(size={"height": 28, "width": 28}, max_image_tiles=4)
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tok, chat_template=MLLAMA_CHAT_TEMPLATE)
    _save(model, processor, directory, eos=[eos, end], pad=pad, bos=bos)


# --- BLIP-2 -------------------------------------------------------------------------------

OPT_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]


def _build_blip2(directory: Path) -> None:
    """BLIP-2: a BLIP vision tower, a Q-Former whose 4 queries become 4 image tokens, and an OPT decoder.
    No chat template and no instructions: it captions (``TASK_PROMPTS`` gives it an empty prompt)."""
    import torch
    from tokenizers.processors import TemplateProcessing
    from transformers import BlipImageProcessor, Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, \
        PreTrainedTokenizerFast

    bpe = train_bpe(VOCAB, OPT_SPECIAL)
    # OPT's tokenizer starts every text with </s> (its bos): the decoder reads the image queries, then that.
    bpe.post_processor = TemplateProcessing(single="</s> $A", special_tokens=[("</s>", bpe.token_to_id("</s>"))])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", model_max_length=2048)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    # The processor adds <image> to the tokenizer, as it does for Salesforce's checkpoints.
    processor = Blip2Processor(image_processor=image_processor, tokenizer=tok, num_query_tokens=4)
    eos, pad, image = _ids(tok, "</s>", "<pad>", "<image>")
    config = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        qformer_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            encoder_hidden_size=32, vocab_size=VOCAB),
        text_config=dict(model_type="opt", vocab_size=len(tok), hidden_size=64, ffn_dim=128, num_hidden_layers=2,
                         num_attention_heads=4, word_embed_proj_dim=64, max_position_embeddings=2048,
                         bos_token_id=eos, eos_token_id=eos, pad_token_id=pad, tie_word_embeddings=False),
        num_query_tokens=4, image_token_index=image, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Blip2ForConditionalGeneration(config).eval()
    _save(model, processor, directory, eos=eos, pad=pad, bos=eos)


# --- the matrix ---------------------------------------------------------------------------

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("smolvlm", "SmolVLM (Idefics3)", "idefics3", lambda d: build_smolvlm(d, image_splitting=False)),
        Family("smolvlm2", "SmolVLM2", "smolvlm", _build_smolvlm2),
        Family("qwen2_vl", "Qwen2-VL", "qwen2_vl", lambda d: _build_qwen(d, v25=False)),
        Family("qwen2_5_vl", "Qwen2.5-VL", "qwen2_5_vl", lambda d: _build_qwen(d, v25=True)),
        Family("llava_next", "LLaVA-NeXT (LLaVA 1.6)", "llava_next", _build_llava_next),
        Family("paligemma", "PaliGemma", "paligemma", _build_paligemma),
        Family("internvl", "InternVL3 (-hf)", "internvl", _build_internvl,
               mlx="mlx-vlm's InternVL builds a Qwen3 decoder"),
        Family("internvl3_5", "InternVL3.5 (-hf)", "internvl", lambda d: _build_internvl(d, decoder="qwen3")),
        Family("mllama", "Llama 3.2 Vision (Mllama)", "mllama", _build_mllama),
        Family("florence2", "Florence-2", "florence2", _build_florence2, structured=False,
               mlx="mlx-vlm reads only the original remote-code Florence-2 layout"),
        Family("blip2", "BLIP-2", "blip-2", _build_blip2, structured=False, mlx="mlx-vlm has no BLIP-2 model"),
    )
}


def build_family(name: str, directory: Path) -> Path:
    """Write family ``name``'s tiny model to ``directory`` (reused when a complete build is there)."""
    family = FAMILIES[name]
    directory = Path(directory)
    marker = directory / _MARKER
    if marker.is_file() and json.loads(marker.read_text()) == {"family": name}:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    family.build(directory)
    marker.write_text(json.dumps({"family": name}))
    return directory
