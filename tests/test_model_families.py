"""Every caption model family the README names, through Shoebox's own transformers backend.

Each family's tiny model (``tests.tiny_families``: the real architecture, its own
processor, tokenizer and chat template, random weights, built offline) is built
once per session, loaded by ``tagging.vlm.get_backend`` from its folder as a real
checkpoint would be, and asked about real corpus photos with Shoebox's real
prompt. Random weights say nothing about content: the tests assert prompt
formatting, image tokens, token budgets, batching, the parser's verdict and what
is stored — never words.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tagging import vlm
from tagging.availability import ModelUnavailable
from tagging.captions import parse_caption
from tagging.prompt import PhotoContext, build_prompt
from tagging.vlm.base import CaptionRequest
from tagging.vlm.transformers_backend import TASK_PROMPTS, TransformersBackend
from tests.tiny_families import FAMILIES, build_family

NAMES = list(FAMILIES)
PHOTOS = ("bundled_photo__coffee.jpg", "camera_jpeg__canon_sx60_hdr_orient6.jpg")  # landscape, portrait
BUDGET = 8


@pytest.fixture(scope="session")
def family_folder(tmp_path_factory):
    """``family_folder(name)``: that family's tiny model folder, built on first use in this session."""
    base = tmp_path_factory.mktemp("families")
    built: dict[str, Path] = {}

    def folder(name: str) -> Path:
        if name not in built:
            built[name] = build_family(name, base / name)
        return built[name]

    return folder


@pytest.fixture(scope="session")
def photos(corpus):
    """Two real photos, decoded upright and bounded as the caption stage does (512 px long edge)."""
    from gallery.imaging import open_upright

    return [open_upright(corpus / name, target=512, max_pixels=100_000_000) for name in PHOTOS]


@pytest.fixture
def family_settings(settings):
    settings.CAPTION_MAX_NEW_TOKENS = BUDGET
    settings.CAPTION_DTYPE = "float32"  # batch-vs-single equality needs fp32 (bf16 padding flips near-ties)
    settings.CAPTION_IMAGE_SPLITTING = False
    settings.WORKER_THREADS = 1
    return settings


def prompts() -> list[str]:
    """Shoebox's prompt twice, once with hints, so a batch needs padding."""
    return [build_prompt(), build_prompt(PhotoContext(place="Arezzo, Italy", camera="NIKON D70"))]


@pytest.mark.parametrize("name", NAMES)
def test_each_family_captions_real_photos_through_its_own_processor(name, family_folder, photos, family_settings):
    family = FAMILIES[name]
    folder = family_folder(name)
    backend = vlm.get_backend("transformers", str(folder))
    backend.check_available()
    requests = [CaptionRequest(image=photo, prompt=text) for photo, text in zip(photos, prompts())]

    outputs = backend.caption(requests)  # every family batches in transformers: one generate() call

    loaded = backend.loaded
    assert isinstance(backend, TransformersBackend) and loaded.model_type == family.model_type
    assert type(loaded.model).__module__.startswith(f"transformers.models.{family.model_type.replace('-', '_')}.")
    assert len(outputs) == 2
    if name == "mllama":
        assert "cross_attention_mask" in backend.prepare(requests[:1])
    tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
    for output, text in zip(outputs, prompts()):
        formatted = backend.prompt_text(text)
        if family.structured:
            # Shoebox's own prompt reaches the model, inside the family's chat format (or after its image token).
            assert text in formatted and formatted != text
            # The photo's one placeholder becomes its image tokens (Mllama: it stays one <|image|>
            # token, and the pixels go in through cross-attention).
            text_tokens = len(tokenizer(formatted, add_special_tokens=False)["input_ids"])
            if name == "mllama":
                assert output.prompt_tokens == text_tokens
            else:
                assert output.prompt_tokens >= text_tokens + 3
            assert output.notes == []
        else:
            # A task-prompt family is asked its own task, whatever Shoebox's prompt said, and says so.
            assert formatted == TASK_PROMPTS[family.model_type][0]
            assert output.notes and output.notes[0] == TASK_PROMPTS[family.model_type][1]
        assert 0 < output.output_tokens <= BUDGET
        assert output.latency > 0 and output.first_token_latency > 0
        parsed = parse_caption(output.text)
        assert isinstance(parsed.fields, dict) and isinstance(parsed.notes, list)
        if not family.structured:
            assert parsed.structured is False  # prose: stored unstructured, and flagged by the parser
    # One generate() call for both photos, the same answers as one by one (left padding done right).
    assert len({o.latency for o in outputs}) == 1
    alone = [backend.caption([request])[0] for request in requests]
    assert [o.text for o in alone] == [o.text for o in outputs]
    assert [o.prompt_tokens for o in alone] == [o.prompt_tokens for o in outputs]


@pytest.mark.parametrize("name", NAMES)
def test_each_familys_model_sees_the_photo(name, family_folder, photos):
    """A photo and its mirror image, one prompt, the same tokens: the first answer token's scores differ
    (the pixels reach the model)."""
    import torch
    from PIL import ImageOps

    backend = TransformersBackend(str(family_folder(name)), max_new_tokens=1, dtype="float32")
    pair = [photos[0], ImageOps.mirror(photos[0])]
    inputs = backend.prepare([CaptionRequest(image=photo, prompt="Caption?") for photo in pair])
    assert torch.equal(inputs["input_ids"][0], inputs["input_ids"][1])
    model = backend.loaded.model
    extra = {}
    if model.config.is_encoder_decoder:
        extra["decoder_input_ids"] = torch.full((2, 1), model.generation_config.decoder_start_token_id)

    with torch.inference_mode():
        logits = model(**inputs, **extra).logits[:, -1]

    assert not torch.allclose(logits[0], logits[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_each_family_honours_a_requests_token_budget(name, family_folder, photos):
    backend = TransformersBackend(str(family_folder(name)), max_new_tokens=BUDGET, min_new_tokens=BUDGET,
                                  dtype="float32")

    requests = [CaptionRequest(image=photos[0], prompt="Caption?", max_new_tokens=budget) for budget in (3, 50)]

    short, full = backend.caption(requests)

    # min_new_tokens makes the model use every token it may: its own budget, never above the backend's,
    # even when a batch is generated to its largest budget.
    assert (short.output_tokens, full.output_tokens) == (3, BUDGET)


def test_qwen2_vl_image_tokens_follow_the_photos_size(family_folder, photos):
    """Qwen2-VL sizes images by a pixel budget: a small photo costs fewer image tokens, a big one is capped."""
    backend = TransformersBackend(str(family_folder("qwen2_vl")), max_new_tokens=1, dtype="float32")
    photo = photos[0]
    tiny = photo.resize((56, 56))

    small, capped = (backend.caption([CaptionRequest(image=image, prompt="Caption?")])[0].prompt_tokens
                     for image in (tiny, photo))
    larger = backend.caption([CaptionRequest(image=photo.resize((1024, 768)), prompt="Caption?")])[0].prompt_tokens

    assert small < capped == larger  # 56 px: 4 image tokens; 512 px and 1024 px: the 16-token budget


def test_a_photo_a_familys_processor_refuses_is_a_caption_error_naming_the_model(family_folder):
    """Qwen2-VL refuses aspect ratios over 200:1 (a 1000×3 strip): the photo fails, with why, for good."""
    from PIL import Image

    from tagging.vlm.base import CaptionError

    folder = str(family_folder("qwen2_vl"))
    strip = Image.new("RGB", (1000, 3), "gray")

    with pytest.raises(CaptionError) as raised:
        TransformersBackend(folder, max_new_tokens=1).caption([CaptionRequest(image=strip, prompt="Caption?")])

    assert folder in str(raised.value) and "aspect ratio" in str(raised.value)
    assert raised.value.transient is False


def test_internvl_photos_stay_one_tile_unless_image_splitting(family_folder, photos):
    folder = str(family_folder("internvl"))
    one_tile = TransformersBackend(folder, max_new_tokens=1, dtype="float32")
    split = TransformersBackend(folder, max_new_tokens=1, dtype="float32", image_splitting=True)
    request = [CaptionRequest(image=photos[0], prompt="Caption?")]

    assert one_tile.image_options() == {"crop_to_patches": False}
    tiles = split.caption(request)[0].prompt_tokens
    single = one_tile.caption(request)[0].prompt_tokens

    assert tiles - single >= 4 * 4  # several more 4-token tiles (and a thumbnail) for the landscape photo


def test_smolvlm2_without_num2words_is_unavailable_naming_the_fix(family_folder, photos, monkeypatch):
    """SmolVLM2's processor refuses to start without num2words: that is a missing package, not a crash."""
    from transformers.models.smolvlm import processing_smolvlm

    folder = str(family_folder("smolvlm2"))
    monkeypatch.setattr(processing_smolvlm, "num2words", None)  # as when the package is not installed

    with pytest.raises(ModelUnavailable) as raised:
        TransformersBackend(folder).caption([CaptionRequest(image=photos[0], prompt="?")])

    assert "num2words" in raised.value.reason and "requirements" in raised.value.fix


@pytest.mark.parametrize("model_type, family, alternative", [
    ("moondream1", "Moondream2", "Ollama"),
    ("llava_qwen2", "FastVLM", "mlx backend"),
    ("phi3_v", "Phi-3.5-vision", "mlx backend"),
    ("internvl_chat", "InternVL", "-hf"),
])
def test_a_remote_code_family_is_unavailable_naming_where_it_runs(model_type, family, alternative, tmp_path,
                                                                  photos):
    folder = tmp_path / model_type
    folder.mkdir()
    (folder / "config.json").write_text(
        f'{{"model_type": "{model_type}", "auto_map": {{"AutoModelForCausalLM": "modeling.Model"}}}}'
    )
    (folder / "model.safetensors").write_bytes(b"")

    with pytest.raises(ModelUnavailable) as raised:
        TransformersBackend(str(folder)).caption([CaptionRequest(image=photos[0], prompt="Caption?")])

    assert family in raised.value.reason and "remote code" in raised.value.reason
    assert alternative in raised.value.fix and "SHOEBOX_CAPTION_BACKEND" in raised.value.fix


# --- the mlx backend (mlx-vlm; on a Linux CPU here, Metal on a Mac) ---------------------------------

MLX_NAMES = [name for name, family in FAMILIES.items() if family.mlx is None]
NOT_MLX = [name for name, family in FAMILIES.items() if family.mlx is not None]


@pytest.fixture(scope="module")
def mlx_vlm():
    return pytest.importorskip("mlx_vlm", reason='mlx-vlm is not installed (`pip install "mlx[cpu]" mlx-vlm` on Linux)')


@pytest.mark.parametrize("name", MLX_NAMES)
def test_each_family_mlx_vlm_supports_captions_a_real_photo_through_the_mlx_backend(name, family_folder, photos,
                                                                                   mlx_vlm, settings):
    """The same folder transformers loads (hub layout), through mlx-vlm's own loader, processor and template."""
    settings.CAPTION_MAX_NEW_TOKENS = BUDGET
    backend = vlm.get_backend("mlx", str(family_folder(name)))
    backend.check_available()
    text = prompts()[0]

    output = backend.caption([CaptionRequest(image=photos[1], prompt=text, max_new_tokens=BUDGET - 2)])[0]

    assert backend.name == "mlx" and not backend.supports_batching  # mlx-vlm: one photo per call here
    assert text in backend.prompt_text(text)
    model, processor = backend.loaded
    assert type(model).__module__.startswith("mlx_vlm.models.")
    assert output.prompt_tokens > len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert 0 < output.output_tokens <= BUDGET - 2  # the request's own budget
    assert 0 < output.first_token_latency <= output.latency
    parsed = parse_caption(output.text)
    assert isinstance(parsed.fields, dict)


def test_a_photo_mlx_vlm_refuses_is_a_caption_error_naming_the_model(family_folder, mlx_vlm):
    from PIL import Image

    from tagging.vlm.base import CaptionError

    folder = str(family_folder("qwen2_vl"))
    strip = Image.new("RGB", (1000, 3), "gray")

    with pytest.raises(CaptionError) as raised:
        vlm.get_backend("mlx", folder).caption([CaptionRequest(image=strip, prompt="Caption?")])

    assert folder in str(raised.value) and "aspect ratio" in str(raised.value)


@pytest.mark.parametrize("name", NOT_MLX)
def test_a_family_mlx_vlm_cannot_run_is_unavailable_naming_the_transformers_backend(name, family_folder, photos,
                                                                                    mlx_vlm):
    backend = vlm.get_backend("mlx", str(family_folder(name)))

    with pytest.raises(ModelUnavailable) as raised:
        backend.caption([CaptionRequest(image=photos[0], prompt="Caption?")])

    assert FAMILIES[name].mlx in raised.value.reason
    assert "SHOEBOX_CAPTION_BACKEND=transformers" in raised.value.fix


# --- stored through the real caption stages ---------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    from tests.tiny_clip import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "clip", seed=0)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["qwen2_5_vl", "florence2"])
def test_a_familys_captions_are_stored_with_their_provenance_by_the_caption_stages(name, family_folder, tiny_clip,
                                                                                    family_settings, library_dir):
    """A chat family and a task-prompt family through import, both caption passes and the database."""
    from gallery import engine, libraries, scans
    from gallery.models import Photo
    from tagging import prompt
    from tagging.models import Caption

    family_settings.CAPTION_BACKEND = "transformers"
    family_settings.CAPTION_MODEL = str(family_folder(name))
    family_settings.CAPTION_IMAGE_SIZE = 256
    family_settings.CLIP_MODEL = tiny_clip
    for photo in PHOTOS:
        library_dir.add(photo)
    library, _ = libraries.add_library(str(library_dir.path))
    scans.import_library(library, sync=True)

    engine.run_all_pending(only="caption")
    engine.run_all_pending(only="embedding")  # the full pass waits for near-duplicate groups
    engine.run_pending("description")

    photos = list(Photo.objects.all())
    assert len(photos) == 2
    for photo in photos:
        stored = {c.caption_pass: c for c in Caption.objects.filter(photo=photo)}
        assert set(stored) == {Caption.Pass.FIRST, Caption.Pass.FULL}
        assert stored[Caption.Pass.FULL].prompt_version == prompt.PROMPT_VERSION
        for caption in stored.values():
            assert caption.backend == "transformers" and caption.model == family_settings.CAPTION_MODEL
            if caption.source_id:  # a near-duplicate's full description, reused (tiny CLIP: similar photos)
                assert caption.source.photo_id != photo.pk and caption.output_tokens is None
            else:
                assert 0 < caption.output_tokens <= BUDGET and caption.prompt_tokens > 0 and caption.latency > 0
            assert caption.raw_text is not None and isinstance(caption.fields, dict)
            if FAMILIES[name].structured:
                assert not any("task prompt" in note for note in caption.parse_notes)
            else:
                # Flagged: stored unstructured, saying which task it was asked instead of Shoebox's prompt.
                assert caption.structured is False
                assert caption.parse_notes[0] == TASK_PROMPTS[FAMILIES[name].model_type][1]
        assert {s.stage: s.state for s in photo.stages.filter(stage__in=["caption", "description"])} == {
            "caption": "done", "description": "done"}
