"""The transformers caption backend on a tiny SmolVLM built offline (random weights).

Random weights say nothing about content: these tests assert structure, token
counts, timings, batching equivalence and loading state — never words.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tagging.availability import ModelUnavailable
from tagging.vlm.base import CaptionRequest
from tagging.vlm.transformers_backend import TransformersBackend, local_model_folder
from tests.tiny_vlm import build_tiny_smolvlm, synthetic_photo

PROMPT = "Describe this photo."
# <fake_token_around_image><global-img> + 4 × <image> + <fake_token_around_image>: one 64 px tile.
ONE_TILE_IMAGE_TOKENS = 4 + 3


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    """The tiny SmolVLM folder, built once per test session (reused by the mlx and server tests)."""
    return build_tiny_smolvlm(tmp_path_factory.getbasetemp() / "tiny-smolvlm")


def requests(count: int = 1) -> list[CaptionRequest]:
    """Photos of different shapes and prompts of different lengths (so a batch needs padding)."""
    shapes = [(320, 240), (200, 300), (256, 256)]
    prompts = [PROMPT, "List the objects in this picture, one per line.", "Caption?"]
    return [
        CaptionRequest(image=synthetic_photo(*shapes[i % 3], seed=i), prompt=prompts[i % 3]) for i in range(count)
    ]


def test_it_captions_each_request_with_token_counts_and_timings(tiny_vlm):
    backend = TransformersBackend(str(tiny_vlm), max_new_tokens=12)

    outputs = backend.caption(requests(2))

    assert len(outputs) == 2
    for output in outputs:
        assert isinstance(output.text, str)
        assert output.prompt_tokens > ONE_TILE_IMAGE_TOKENS
        assert 0 < output.output_tokens <= 12
        assert output.latency > 0
        # latency is the batch's wall time shared out; the first token came before the batch ended.
        assert 0 < output.first_token_latency <= 2 * output.latency
    single = backend.caption(requests(1))[0]
    assert 0 < single.first_token_latency <= single.latency


def test_an_empty_list_gives_no_outputs_and_loads_nothing(tiny_vlm):
    backend = TransformersBackend(str(tiny_vlm))

    assert backend.caption([]) == []
    assert backend._loaded is None


def test_max_new_tokens_bounds_output_tokens(tiny_vlm):
    short = TransformersBackend(str(tiny_vlm), max_new_tokens=3)
    forced = TransformersBackend(str(tiny_vlm), max_new_tokens=5, min_new_tokens=5)

    assert short.caption(requests(1))[0].output_tokens <= 3
    assert forced.caption(requests(1))[0].output_tokens == 5


def test_a_batch_gives_the_same_captions_as_single_calls(tiny_vlm):
    # fp32: in bf16, padding changes rounding enough to flip near-tied argmaxes of random weights.
    backend = TransformersBackend(str(tiny_vlm), max_new_tokens=16, dtype="float32")
    batch = requests(3)

    together = backend.caption(batch)
    alone = [backend.caption([request])[0] for request in batch]

    assert len(together) == 3
    assert len({o.prompt_tokens for o in together}) > 1, "the prompts should need left padding"
    assert [o.text for o in together] == [o.text for o in alone]
    assert [o.prompt_tokens for o in together] == [o.prompt_tokens for o in alone]
    assert [o.output_tokens for o in together] == [o.output_tokens for o in alone]
    # One generate() call: the batch's wall time is shared out, and its first token is theirs.
    assert len({o.latency for o in together}) == 1
    assert len({o.first_token_latency for o in together}) == 1


def test_image_splitting_is_off_by_default(tiny_vlm):
    prompt_only = CaptionRequest(image=synthetic_photo(256, 256), prompt=PROMPT)
    default = TransformersBackend(str(tiny_vlm), max_new_tokens=2)
    split = TransformersBackend(str(tiny_vlm), max_new_tokens=2, image_splitting=True)

    one_tile = default.caption([prompt_only])[0].prompt_tokens
    tiles = split.caption([prompt_only])[0].prompt_tokens

    assert default.loaded.processor.image_processor.do_image_splitting is False
    text_tokens = len(default.loaded.processor.tokenizer(default.prompt_text(PROMPT))["input_ids"]) - 1
    assert one_tile == text_tokens + ONE_TILE_IMAGE_TOKENS
    assert tiles > 4 * one_tile  # a 256 px photo on 64 px tiles: 16 tiles and the global view


def test_the_model_loads_once_per_backend(tiny_vlm, monkeypatch):
    from transformers import AutoModelForImageTextToText

    loads = []
    original = AutoModelForImageTextToText.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args[0])
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", classmethod(counting))
    backend = TransformersBackend(str(tiny_vlm), max_new_tokens=2)

    backend.caption(requests(1))
    model = backend.loaded.model
    backend.caption(requests(2))

    assert len(loads) == 1
    assert backend.loaded.model is model


def test_torch_threads_follow_worker_threads(tiny_vlm, settings):
    import torch

    before = torch.get_num_threads()
    settings.WORKER_THREADS = 1
    try:
        TransformersBackend(str(tiny_vlm), max_new_tokens=2).caption(requests(1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_missing_folder_is_unavailable_with_the_fix(tmp_path):
    missing = tmp_path / "no-such-model"
    backend = TransformersBackend(str(missing))

    with pytest.raises(ModelUnavailable) as raised:
        backend.check_available()

    assert raised.value.model == str(missing)
    assert "does not exist" in raised.value.reason
    assert "models pull" in raised.value.fix and "SHOEBOX_CAPTION_MODEL" in raised.value.fix
    with pytest.raises(ModelUnavailable):
        backend.caption(requests(1))


def test_a_folder_without_weights_is_unavailable(tiny_vlm, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(tiny_vlm / "config.json", partial / "config.json")

    with pytest.raises(ModelUnavailable, match="no weights"):
        TransformersBackend(str(partial)).check_available()


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, offline (huggingface_hub reads HF_HOME at import, so patch its constant too)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hf" / "hub"


def test_a_hub_id_not_in_the_cache_is_unavailable(empty_hf_cache):
    backend = TransformersBackend("HuggingFaceTB/SmolVLM-256M-Instruct")

    with pytest.raises(ModelUnavailable) as raised:
        backend.check_available()

    assert raised.value.model == "HuggingFaceTB/SmolVLM-256M-Instruct"
    assert "cache" in raised.value.reason
    assert "huggingface-cli download HuggingFaceTB/SmolVLM-256M-Instruct" in raised.value.fix
    assert "HuggingFaceTB/SmolVLM-256M-Instruct" in str(raised.value)


def test_a_hub_id_in_the_cache_loads_from_its_snapshot(tiny_vlm, empty_hf_cache):
    """The cache layout ``huggingface-cli download`` leaves: refs/main → snapshots/<commit>/files."""
    repo = empty_hf_cache / "models--shoebox-tests--tiny-smolvlm"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_vlm, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    backend = TransformersBackend("shoebox-tests/tiny-smolvlm", max_new_tokens=2)

    backend.check_available()
    output = backend.caption(requests(1))[0]

    assert local_model_folder("shoebox-tests/tiny-smolvlm") == repo / "snapshots" / commit
    assert output.output_tokens > 0


def test_a_model_without_a_native_class_is_unavailable(tmp_path):
    """Remote-code-only checkpoints (Moondream2 …) are reported, never loaded with trust_remote_code."""
    folder = tmp_path / "remote-code-only"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "moondream1", "auto_map": {"AutoModelForCausalLM": "x.Y"}}')
    (folder / "model.safetensors").write_bytes(b"")

    with pytest.raises(ModelUnavailable) as raised:
        TransformersBackend(str(folder)).caption(requests(1))

    assert raised.value.model == str(folder)


def test_bad_settings_fail_loudly():
    with pytest.raises(ValueError, match="dtype"):
        TransformersBackend("x", dtype="int4")
    with pytest.raises(ValueError, match="max_new_tokens"):
        TransformersBackend("x", max_new_tokens=0)


def test_it_captions_real_photos_decoded_for_the_model(tiny_vlm, corpus):
    from gallery.imaging import open_upright

    images = [
        open_upright(corpus / name, target=512, max_pixels=100_000_000)
        for name in ("bundled_photo__coffee.jpg", "camera_jpeg__canon_sx60_hdr_orient6.jpg")
    ]
    backend = TransformersBackend(str(tiny_vlm), max_new_tokens=8)

    outputs = backend.caption([CaptionRequest(image=image, prompt=PROMPT) for image in images])

    assert [o.output_tokens > 0 for o in outputs] == [True, True]
    assert outputs[0].prompt_tokens == outputs[1].prompt_tokens  # one tile each, whatever the shape

