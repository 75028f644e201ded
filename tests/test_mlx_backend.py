"""The mlx caption backend on the tiny SmolVLM folder (mlx-vlm on the CPU here, Metal on a Mac).

Random weights say nothing about content: these tests assert structure, token
counts and that mlx-vlm and transformers decode the same model alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mlx_vlm", reason='mlx-vlm is not installed here (`pip install "mlx[cpu]" mlx-vlm` on Linux)')

from tagging.availability import ModelUnavailable  # noqa: E402
from tagging.vlm.base import CaptionRequest  # noqa: E402
from tagging.vlm.mlx_backend import MlxBackend  # noqa: E402
from tagging.vlm.transformers_backend import TransformersBackend  # noqa: E402
from tests.tiny_vlm import build_tiny_smolvlm, synthetic_photo  # noqa: E402

PROMPTS = ["Describe this photo.", "List the objects in this picture, one per line.", "Caption?"]
ONE_TILE_IMAGE_TOKENS = 4 + 3


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    """The tiny SmolVLM folder, built once per test session (shared with the transformers tests)."""
    return build_tiny_smolvlm(tmp_path_factory.getbasetemp() / "tiny-smolvlm")


def smooth_requests() -> list[CaptionRequest]:
    shapes = [(512, 384), (384, 512), (512, 512)]
    return [
        CaptionRequest(image=synthetic_photo(*shapes[i], seed=i, noise=0), prompt=PROMPTS[i]) for i in range(3)
    ]


def test_it_captions_through_mlx_vlm(tiny_vlm):
    backend = MlxBackend(str(tiny_vlm), max_new_tokens=10)

    outputs = backend.caption(smooth_requests())

    assert len(outputs) == 3
    for output in outputs:
        assert isinstance(output.text, str)
        assert 0 < output.output_tokens <= 10
        assert output.prompt_tokens > ONE_TILE_IMAGE_TOKENS
        assert 0 < output.first_token_latency <= output.latency
    # Image splitting is off, as in the transformers backend: one tile whatever the shape.
    assert backend.loaded[1].image_processor.do_image_splitting is False
    assert outputs[0].prompt_tokens < 40


def test_greedy_output_matches_transformers(tiny_vlm):
    """Same folder, prompt and photo: the same tokens, counts and text from both engines.

    This holds here for short outputs on smooth photos. It is not guaranteed
    in general: the engines resize photos with different libraries (PIL vs
    torchvision; up to 2/255 per pixel), and random weights give nearly tied
    logits, so long greedy runs on noisy images can part after 10–25 tokens
    (1 in 30 forty-token runs on smooth photos here). Fed identical pixels,
    the two engines' logits agree to ~1e-5.
    """
    mlx = MlxBackend(str(tiny_vlm), max_new_tokens=16)
    torch_fp32 = TransformersBackend(str(tiny_vlm), max_new_tokens=16, dtype="float32")
    batch = smooth_requests()

    from_mlx = mlx.caption(batch)
    from_transformers = torch_fp32.caption(batch)

    assert [o.prompt_tokens for o in from_mlx] == [o.prompt_tokens for o in from_transformers]
    assert [o.output_tokens for o in from_mlx] == [o.output_tokens for o in from_transformers]
    assert [o.text for o in from_mlx] == [o.text for o in from_transformers]


def test_transformers_still_gets_its_own_processor_after_mlx_vlm_is_imported(tiny_vlm):
    """mlx_vlm patches AutoProcessor process-wide to hand out MLX processors for idefics3."""
    import mlx_vlm  # noqa: F401  (the import is what installs the patch)

    backend = TransformersBackend(str(tiny_vlm), max_new_tokens=2)

    assert type(backend.loaded.processor).__module__.startswith("transformers.")
    assert backend.caption(smooth_requests()[:1])[0].output_tokens > 0


def test_max_new_tokens_bounds_output_tokens(tiny_vlm):
    backend = MlxBackend(str(tiny_vlm), max_new_tokens=3)

    assert all(o.output_tokens <= 3 for o in backend.caption(smooth_requests()))


def test_the_model_loads_once_per_backend(tiny_vlm, monkeypatch):
    import mlx_vlm

    loads = []
    original = mlx_vlm.load

    def counting(path, *args, **kwargs):
        loads.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(mlx_vlm, "load", counting)
    backend = MlxBackend(str(tiny_vlm), max_new_tokens=2)

    backend.caption(smooth_requests()[:1])
    backend.caption(smooth_requests()[1:])

    assert loads == [str(tiny_vlm)]


def test_a_missing_folder_is_unavailable_with_the_fix(tmp_path):
    missing = tmp_path / "no-such-model"
    backend = MlxBackend(str(missing))

    with pytest.raises(ModelUnavailable) as raised:
        backend.check_available()

    assert raised.value.model == str(missing)
    assert "models pull" in raised.value.fix
    with pytest.raises(ModelUnavailable):
        backend.caption(smooth_requests()[:1])
