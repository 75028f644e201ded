"""tagging.clip: specs, offline availability checks, loading, embeddings, the file pipeline.

Real open_clip code on tiny models with fixed random weights (tests/tiny_clip.py),
real files from the shared corpus. No database, no network: tests that look
for weights run with the network cut off (``no_network``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gallery.imaging import open_upright
from tagging import clip
from tagging.availability import ModelUnavailable
from tagging.clip import ClipSpec
from tests.tiny_clip import (
    TINY_ARCH,
    build_tiny_clip,
    build_tiny_clip_weights_file,
    put_in_hf_cache,
    register_tiny_arch,
)

ROOT = Path(__file__).resolve().parent.parent
PULL = "manage.py models pull"

# Corpus files: (name, decodes?)
MIXED_FILES = [
    ("orientation__landscape_6.jpg", True),
    ("bad__truncated_half.jpg", False),
    ("heic__iphone13promax.heic", True),
    ("png__rgba_alpha.png", True),
    ("bad__random_bytes.jpg", False),
    ("bad__zero_bytes.jpg", False),
    ("bundled_photo__cat_chelsea.jpg", True),
    ("nonimage__document.pdf", False),
    ("webp__lossless_cat.webp", True),
]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, str]:
    """Specs of the tiny models, built once: two folders (different seed and size) and a weights file."""
    root = tmp_path_factory.mktemp("tiny-clip")
    return {
        "dir": build_tiny_clip(root / "a", seed=0),
        "other_dir": build_tiny_clip(root / "b", seed=1, embed_dim=16),
        "file": build_tiny_clip_weights_file(root / "file", seed=0),
    }


@pytest.fixture(autouse=True)
def _fresh_models():
    """Each test starts with no model loaded and leaves torch's thread count as it found it."""
    import torch

    threads = torch.get_num_threads()
    clip.unload()
    yield
    clip.unload()
    torch.set_num_threads(threads)


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to resolve a host or open a connection; hub in offline mode."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def empty_hf_home(tmp_path, monkeypatch) -> Path:
    """HF_HOME pointing at an empty folder (and no HF_HUB_CACHE overriding it)."""
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path / "hf" / "hub"


def photo(seed: int, size=(120, 90)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


# --------------------------------------------------------------------------
# ClipSpec.parse
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "arch", "source"),
    [
        ("ViT-B-32:laion2b_s34b_b79k", "pretrained", "ViT-B-32", "laion2b_s34b_b79k"),
        ("  ViT-B-32:laion2b_s34b_b79k\n", "pretrained", "ViT-B-32", "laion2b_s34b_b79k"),
        ("ViT-B-32:LAION2B-s34B-b79K", "pretrained", "ViT-B-32", "laion2b_s34b_b79k"),  # open_clip's normalisation
        ("ViT-B-16-plus-240:laion400m_e32", "pretrained", "ViT-B-16-plus-240", "laion400m_e32"),
        ("ViT-B-32:/models/vit-b-32.safetensors", "file", "ViT-B-32", "/models/vit-b-32.safetensors"),
        ("ViT-L-14:/models/open_clip_pytorch_model.bin", "file", "ViT-L-14", "/models/open_clip_pytorch_model.bin"),
        ("RN50:/models/rn50.pt", "file", "RN50", "/models/rn50.pt"),
        ("local-dir:/models/clip", "local-dir", "", "/models/clip"),
        ("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "hf-hub", "", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
    ],
)
def test_parse_accepts_each_spec_format(text, kind, arch, source):
    spec = ClipSpec.parse(text)
    assert (spec.kind, spec.arch, spec.source) == (kind, arch, source)
    assert ClipSpec.parse(str(spec)) == spec


def test_parse_expands_home_in_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ClipSpec.parse("local-dir:~/clip").source == str(tmp_path / "clip")
    assert ClipSpec.parse("ViT-B-32:~/w.safetensors").source == str(tmp_path / "w.safetensors")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty CLIP model spec"),
        ("   ", "empty CLIP model spec"),
        ("ViT-B-32", "no weights"),
        ("ViT-B-32:", "nothing after the colon"),
        (":laion2b_s34b_b79k", "not an open_clip architecture name"),
        ("ViT B 32:laion2b", "not an open_clip architecture name"),
        ("ViT-B-32:laion2b s34b", "neither a pretrained tag nor a path"),
        ("local-dir:", "must be absolute"),
        ("local-dir:models/clip", "must be absolute"),
        ("ViT-B-32:weights.safetensors", "must be absolute"),
        ("ViT-B-32:./weights.safetensors", "must be absolute"),
        ("ViT-B-32:/models/weights.txt", "must end in .safetensors"),
        ("ViT-B-32:/models/clip", "for a folder use local-dir"),
        ("hf-hub:", "expected hf-hub:ORG/NAME"),
        ("hf-hub:just-a-name", "expected hf-hub:ORG/NAME"),
        ("hf-hub:org/name/extra", "expected hf-hub:ORG/NAME"),
    ],
)
def test_parse_rejects_bad_specs_with_a_clear_message(text, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")) as caught:
        ClipSpec.parse(text)
    if text.strip():  # the message quotes the spec it rejects
        assert repr(text.strip()) in str(caught.value)


def test_describe_says_which_model_and_where():
    assert "ViT-B-32" in ClipSpec.parse("ViT-B-32:laion2b_s34b_b79k").describe()
    assert "/w/x.safetensors" in ClipSpec.parse("ViT-B-32:/w/x.safetensors").describe()
    assert "/models/clip" in ClipSpec.parse("local-dir:/models/clip").describe()
    assert "org/name" in ClipSpec.parse("hf-hub:org/name").describe()


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------


def test_hub_keys_are_the_canonical_spec():
    assert ClipSpec.parse("ViT-B-32:laion2b_s34b_b79k").key == "ViT-B-32:laion2b_s34b_b79k"
    assert ClipSpec.parse("ViT-B-32:LAION2B-s34b-b79k").key == "ViT-B-32:laion2b_s34b_b79k"
    assert ClipSpec.parse("hf-hub:org/name").key == "hf-hub:org/name"


def test_keys_of_two_different_models_differ(tiny):
    keys = {clip.load(spec).key for spec in tiny.values()}
    assert len(keys) == 3


def test_the_key_follows_the_weights_not_the_path(tiny, tmp_path):
    """A copied model folder is the same model; changed weights at the same path are not."""
    import shutil

    source = Path(ClipSpec.parse(tiny["dir"]).source)
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    assert ClipSpec.parse(f"local-dir:{copy}").key == ClipSpec.parse(tiny["dir"]).key

    other = Path(ClipSpec.parse(tiny["other_dir"]).source)
    shutil.copyfile(other / "open_clip_model.safetensors", copy / "open_clip_model.safetensors")
    assert ClipSpec.parse(f"local-dir:{copy}").key != ClipSpec.parse(tiny["dir"]).key


def test_a_loaded_model_carries_its_spec_key(tiny):
    for spec in tiny.values():
        assert clip.load(spec).key == ClipSpec.parse(spec).key


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def test_it_loads_a_local_dir_model(tiny):
    model = clip.load(tiny["dir"])
    assert (model.dim, model.image_size) == (32, 64)
    assert model.key.startswith("local-dir:sha256:")


def test_it_loads_a_weights_file(tiny):
    model = clip.load(tiny["file"])
    assert (model.dim, model.image_size) == (32, 64)
    assert model.key.startswith(f"{TINY_ARCH}:sha256:")


def test_the_weights_file_and_the_folder_of_the_same_weights_embed_alike(tiny):
    """Same seed, two routes: proves the file's weights (not random ones) are loaded."""
    images = [photo(1), photo(2)]
    from_dir = clip.load(tiny["dir"]).embed_images(images)
    from_file = clip.load(tiny["file"]).embed_images(images)
    np.testing.assert_allclose(from_dir, from_file, atol=1e-6)


def test_a_second_load_returns_the_same_object(tiny):
    first = clip.load(tiny["dir"])
    assert clip.load(tiny["dir"]) is first
    assert clip.load(ClipSpec.parse(tiny["dir"])) is first
    assert clip.load(tiny["other_dir"]) is not first


def test_load_defaults_to_the_setting(tiny, settings):
    settings.CLIP_MODEL = tiny["other_dir"]
    assert clip.load() is clip.load(tiny["other_dir"])


def test_load_sets_torch_threads_from_settings(tiny, settings):
    import torch

    settings.WORKER_THREADS = 1
    torch.set_num_threads(2)
    clip.load(tiny["dir"])
    assert torch.get_num_threads() == 1


def test_worker_threads_fall_back_to_the_cpu_count_without_django():
    code = "from tagging.clip import worker_threads; import os; assert worker_threads() == (os.cpu_count() or 1)"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


# --------------------------------------------------------------------------
# Missing weights
# --------------------------------------------------------------------------


def assert_unavailable(spec: str, *fragments: str) -> ModelUnavailable:
    """check_available and load both raise ModelUnavailable naming the model and the pull command."""
    for attempt in (clip.check_available, clip.load):
        with pytest.raises(ModelUnavailable) as caught:
            attempt(spec)
        error = caught.value
        assert error.model == str(ClipSpec.parse(spec))
        assert str(ClipSpec.parse(spec)) in error.message
        assert PULL in error.message
        for fragment in fragments:
            assert fragment in error.message
    return error


def test_a_missing_weights_file_is_unavailable(tiny, tmp_path, no_network):
    register_tiny_arch(tmp_path)
    assert_unavailable(f"{TINY_ARCH}:{tmp_path}/nowhere.safetensors", "does not exist", str(tmp_path / "nowhere"))


def test_a_folder_given_as_weights_file_is_unavailable(tiny, tmp_path, no_network):
    register_tiny_arch(tmp_path)
    (tmp_path / "dir.safetensors").mkdir()
    assert_unavailable(f"{TINY_ARCH}:{tmp_path}/dir.safetensors", "is a folder")


def test_a_missing_local_dir_is_unavailable(tmp_path, no_network):
    assert_unavailable(f"local-dir:{tmp_path}/nowhere", "does not exist")


def test_a_local_dir_without_weights_is_unavailable_never_random(tiny, tmp_path, no_network):
    """open_clip itself would warn and build a random model here; Shoebox refuses."""
    import shutil

    folder = tmp_path / "config-only"
    folder.mkdir()
    shutil.copyfile(Path(ClipSpec.parse(tiny["dir"]).source) / "open_clip_config.json", folder / "open_clip_config.json")
    assert_unavailable(f"local-dir:{folder}", "holds no weights")


def test_a_local_dir_without_config_is_unavailable(tmp_path, no_network):
    (tmp_path / "m").mkdir()
    assert_unavailable(f"local-dir:{tmp_path}/m", "open_clip_config.json")


def test_a_hub_tag_not_in_an_empty_cache_is_unavailable_without_network(empty_hf_home, no_network):
    started = time.monotonic()
    error = assert_unavailable(
        "ViT-B-32:laion2b_s34b_b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", str(empty_hf_home)
    )
    assert "not in the Hugging Face cache" in error.reason
    assert time.monotonic() - started < 30  # nothing waited on a network


def test_an_hf_hub_repo_not_in_the_cache_is_unavailable(empty_hf_home, no_network):
    assert_unavailable("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "not in the Hugging Face cache")


def test_an_unknown_architecture_or_tag_is_unavailable(empty_hf_home, no_network):
    with pytest.raises(ModelUnavailable, match="no architecture named 'ViT-Nope'"):
        clip.check_available("ViT-Nope:laion2b_s34b_b79k")
    with pytest.raises(ModelUnavailable, match="no pretrained tag 'nope'.*laion2b_s34b_b79k"):
        clip.check_available("ViT-B-32:nope")


def test_a_model_whose_tokenizer_lives_on_the_hub_is_refused_as_arch_spec(empty_hf_home, no_network):
    with pytest.raises(ModelUnavailable, match="tokenizer"):
        clip.check_available("ViT-B-16-SigLIP:webli")


def test_weights_of_another_architecture_are_unavailable_not_random(tiny, no_network):
    """The dim-16 model's weights named as the dim-32 architecture: strict loading refuses them."""
    other = Path(ClipSpec.parse(tiny["other_dir"]).source) / "open_clip_model.safetensors"
    register_tiny_arch(Path(ClipSpec.parse(tiny["file"]).source).parent)
    with pytest.raises(ModelUnavailable, match="could not load the weights"):
        clip.load(f"{TINY_ARCH}:{other}")


def test_a_corrupt_weights_file_is_unavailable(tiny, tmp_path, no_network):
    register_tiny_arch(tmp_path)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(ModelUnavailable, match="could not load the weights"):
        clip.load(f"{TINY_ARCH}:{broken}")


def test_checking_local_and_known_specs_does_not_import_torch(tiny, empty_hf_home):
    """The web process can show the banner without paying for torch."""
    code = (
        "import sys\n"
        "from tagging.clip import check_available\n"
        "from tagging.availability import ModelUnavailable\n"
        f"check_available({tiny['dir']!r})\n"
        "try:\n"
        "    check_available('ViT-B-32:laion2b_s34b_b79k')\n"
        "except ModelUnavailable:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('expected ModelUnavailable')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


def test_known_pretrained_table_matches_open_clip():
    from open_clip import pretrained

    for (arch, tag), hf_hub in clip.KNOWN_PRETRAINED.items():
        assert pretrained.get_pretrained_cfg(arch, tag).get("hf_hub") == hf_hub, (arch, tag)


# --------------------------------------------------------------------------
# Hub models from the local cache
# --------------------------------------------------------------------------


def test_it_loads_a_hub_tag_from_the_cache_without_network(tiny, empty_hf_home, no_network, monkeypatch):
    """The tiny architecture gets an open_clip tag whose weights sit in the HF cache, as after a pull."""
    from open_clip import pretrained

    folder = Path(ClipSpec.parse(tiny["dir"]).source)
    register_tiny_arch(Path(ClipSpec.parse(tiny["file"]).source).parent)
    tag_cfg = {"hf_hub": "shoebox-test/tiny-clip/", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    monkeypatch.setitem(pretrained._PRETRAINED, TINY_ARCH, {"tiny_s0": tag_cfg})
    spec = f"{TINY_ARCH}:tiny_s0"

    with pytest.raises(ModelUnavailable):  # not pulled yet
        clip.check_available(spec)
    put_in_hf_cache(empty_hf_home, "shoebox-test/tiny-clip", {"open_clip_model.safetensors": folder / "open_clip_model.safetensors"})
    clip.check_available(spec)
    model = clip.load(spec)
    assert model.key == spec
    # Same weights as the folder; the tag's own normalisation is applied.
    assert model.preprocess(photo(1)).mean() != clip.load(tiny["dir"]).preprocess(photo(1)).mean()
    np.testing.assert_allclose(model.embed_texts(["a cat"]), clip.load(tiny["dir"]).embed_texts(["a cat"]), atol=1e-6)


def test_it_loads_an_hf_hub_repo_from_the_cache_without_network(tiny, empty_hf_home, no_network):
    folder = Path(ClipSpec.parse(tiny["other_dir"]).source)
    put_in_hf_cache(
        empty_hf_home,
        "shoebox-test/tiny-clip-b",
        {name: folder / name for name in ("open_clip_config.json", "open_clip_model.safetensors")},
    )
    model = clip.load("hf-hub:shoebox-test/tiny-clip-b")
    assert (model.key, model.dim) == ("hf-hub:shoebox-test/tiny-clip-b", 16)
    images = [photo(3)]
    np.testing.assert_allclose(model.embed_images(images), clip.load(tiny["other_dir"]).embed_images(images), atol=1e-6)


def test_hf_cache_location_follows_the_environment_at_call_time(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert clip.hf_hub_cache() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert clip.hf_hub_cache() == tmp_path / "cache"


# --------------------------------------------------------------------------
# pull
# --------------------------------------------------------------------------


def test_pull_fails_clearly_when_offline(empty_hf_home, no_network):
    messages = []
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="from the Hugging Face hub failed") as caught:
        clip.pull("ViT-B-32:laion2b_s34b_b79k", progress=messages.append)
    assert "internet access" in caught.value.message
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/open_clip_model.safetensors" in caught.value.reason
    assert messages == [f"downloading laion/CLIP-ViT-B-32-laion2B-s34B-b79K/open_clip_model.safetensors into {empty_hf_home}"]
    assert time.monotonic() - started < 30


def test_pull_of_a_cached_model_downloads_nothing(tiny, empty_hf_home, no_network):
    folder = Path(ClipSpec.parse(tiny["dir"]).source)
    snapshot = put_in_hf_cache(
        empty_hf_home,
        "shoebox-test/tiny-clip",
        {name: folder / name for name in ("open_clip_config.json", "open_clip_model.safetensors")},
    )
    assert Path(clip.pull("hf-hub:shoebox-test/tiny-clip")) == snapshot


def test_pull_of_a_local_model_returns_its_path_or_says_what_is_missing(tiny, tmp_path):
    assert clip.pull(tiny["dir"]) == ClipSpec.parse(tiny["dir"]).source
    with pytest.raises(ModelUnavailable, match="does not exist"):
        clip.pull(f"local-dir:{tmp_path}/nowhere")


# --------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------


def test_image_embeddings_are_unit_length_float32_of_dim(tiny):
    for spec in (tiny["dir"], tiny["other_dir"]):
        model = clip.load(spec)
        vectors = model.embed_images([photo(1), photo(2, size=(50, 200)), photo(3).convert("L")])
        assert vectors.dtype == np.float32
        assert vectors.shape == (3, model.dim)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embeddings_are_deterministic(tiny):
    images, texts = [photo(1), photo(2)], ["a cat on a sofa", "mountains"]
    first = clip.load(tiny["dir"])
    before = first.embed_images(images), first.embed_texts(texts)
    clip.unload()
    second = clip.load(tiny["dir"])
    assert second is not first
    after = second.embed_images(images), second.embed_texts(texts)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])


def test_different_images_get_different_vectors(tiny):
    vectors = clip.load(tiny["dir"]).embed_images([photo(1), photo(2)])
    assert not np.allclose(vectors[0], vectors[1], atol=1e-4)


def test_batched_results_equal_one_at_a_time(tiny):
    model = clip.load(tiny["dir"])
    images = [photo(seed) for seed in range(7)]
    batched = model.embed_images(images)
    single = np.concatenate([model.embed_images([image]) for image in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_texts_embed_to_unit_vectors(tiny):
    model = clip.load(tiny["dir"])
    vectors = model.embed_texts(["a cat", "a dog", "a cat", "x" * 2000])  # the last is truncated
    assert vectors.shape == (4, model.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert not np.allclose(vectors[0], vectors[1], atol=1e-4)
    np.testing.assert_allclose(model.embed_texts(["a dog"])[0], vectors[1], atol=1e-5)
    np.testing.assert_allclose(model.embed_texts(["a cat", "a dog"], batch_size=1), vectors[:2], atol=1e-5)


def test_a_search_text_asked_again_is_not_encoded_again(tiny, settings, monkeypatch):
    model = clip.load(tiny["dir"])
    encoded = []
    real = model.embed_texts
    monkeypatch.setattr(model, "embed_texts", lambda texts: encoded.append(list(texts)) or real(texts))
    settings.QUERY_CACHE = 2
    beach = model.embed_query("beach")
    np.testing.assert_allclose(beach, real(["beach"])[0], atol=1e-6)
    assert model.embed_query("beach") is beach and encoded == [["beach"]]
    with pytest.raises(ValueError):
        beach[0] = 1.0  # shared between requests: read-only

    model.embed_query("dog")
    model.embed_query("beach")  # used last: "dog" is now the oldest
    model.embed_query("cat")
    model.embed_query("beach")
    model.embed_query("dog")
    assert encoded == [["beach"], ["dog"], ["cat"], ["dog"]], "two remembered, least recently used dropped"

    settings.QUERY_CACHE = 0
    model.embed_query("owl")
    model.embed_query("owl")
    assert encoded[-2:] == [["owl"], ["owl"]], "0 turns the cache off"


def test_texts_are_encoded_only_up_to_their_end_and_match_the_full_context(tiny):
    """Shoebox stops the causal text tower after the longest text's end token; the vectors are open_clip's."""
    import torch

    model = clip.load(tiny["dir"])
    tokenizer = model._tokenizer
    texts = ["a cat", "a red bicycle leaning on a wall by the sea at dusk", "", "x " * 200]
    tokens = tokenizer(texts)
    with torch.inference_mode():
        full = model.torch_model.encode_text(tokens, normalize=True).numpy()
        trimmed = clip.encode_text(model.torch_model, tokens).numpy()
        alone = np.concatenate([clip.encode_text(model.torch_model, tokenizer([t])).numpy() for t in texts])
    assert clip._trims_text(model.torch_model)
    np.testing.assert_allclose(trimmed, full, atol=1e-5)
    np.testing.assert_allclose(alone, full, atol=1e-5)


def test_a_text_tower_that_is_not_causal_is_encoded_whole(tiny, monkeypatch):
    model = clip.load(tiny["dir"])
    monkeypatch.setattr(model.torch_model, "attn_mask", None)  # bidirectional: padding would count
    assert not clip._trims_text(model.torch_model)
    calls = []
    real = model.torch_model.encode_text
    monkeypatch.setattr(model.torch_model, "encode_text", lambda t, normalize: calls.append(t.shape) or real(t, normalize))
    model.embed_texts(["a cat"])
    assert calls and calls[0][-1] == tokenizer_context(model)


def tokenizer_context(model) -> int:
    return int(model._tokenizer(["a"]).shape[-1])

def test_empty_inputs_give_empty_arrays(tiny):
    model = clip.load(tiny["dir"])
    assert model.embed_images([]).shape == (0, model.dim)
    assert model.embed_texts([]).shape == (0, model.dim)
    assert list(clip.embed_files(model, [], batch_size=4)) == []
    with pytest.raises(TypeError):
        model.embed_texts("a cat")


# --------------------------------------------------------------------------
# embed_files
# --------------------------------------------------------------------------


def test_embed_files_yields_a_vector_or_an_error_per_file_in_input_order(tiny, corpus):
    model = clip.load(tiny["dir"])
    paths = [corpus / name for name, _ in MIXED_FILES] + [corpus / "no_such_file.jpg"]
    results = list(clip.embed_files(model, paths, batch_size=4, max_pixels=200_000_000))

    assert [index for index, _, _ in results] == list(range(len(paths)))
    for (index, vector, error), path in zip(results, paths):
        decodes = dict(MIXED_FILES).get(path.name, False)
        if decodes:
            assert error == "" and vector.shape == (model.dim,) and vector.dtype == np.float32, path.name
            assert abs(np.linalg.norm(vector) - 1) < 1e-5
            # The same vector as decoding by hand and embedding alone.
            by_hand = model.embed_images([open_upright(path, target=clip.decode_target(64), max_pixels=200_000_000)])
            np.testing.assert_allclose(vector, by_hand[0], atol=1e-5)
        else:
            assert vector is None and error, path.name
    errors = {paths[index].name: error for index, vector, error in results if vector is None}
    assert "truncated" in errors["bad__truncated_half.jpg"]
    assert "empty file" in errors["bad__zero_bytes.jpg"]
    assert "PDF" in errors["nonimage__document.pdf"]
    assert "No such file" in errors["no_such_file.jpg"]


def test_embed_files_gives_the_same_vectors_with_and_without_decode_threads(tiny, corpus):
    model = clip.load(tiny["dir"])
    paths = [str(corpus / name) for name, _ in MIXED_FILES]
    threaded = list(clip.embed_files(model, paths, batch_size=3, decode_threads=2))
    inline = list(clip.embed_files(model, paths, batch_size=3, decode_threads=0))
    assert [(i, e) for i, _, e in threaded] == [(i, e) for i, _, e in inline]
    for (_, a, _), (_, b, _) in zip(threaded, inline):
        assert (a is None and b is None) or np.allclose(a, b, atol=1e-5)


def test_a_batch_of_only_broken_files_does_not_stop_the_run(tiny, corpus):
    model = clip.load(tiny["dir"])
    paths = [corpus / "bad__zero_bytes.jpg", corpus / "bad__random_bytes.jpg", corpus / "bundled_photo__coffee.jpg"]
    results = list(clip.embed_files(model, paths, batch_size=2))
    assert [vector is None for _, vector, _ in results] == [True, True, False]


def test_embed_files_can_stop_early(tiny, corpus):
    model = clip.load(tiny["dir"])
    paths = [corpus / "bundled_photo__coffee.jpg"] * 40
    results = clip.embed_files(model, paths, batch_size=4)
    first = next(results)
    results.close()  # pending decodes are cancelled; nothing hangs
    assert first[0] == 0 and first[1] is not None


def test_embed_files_rejects_a_bad_batch_size(tiny):
    with pytest.raises(ValueError, match="batch_size"):
        list(clip.embed_files(clip.load(tiny["dir"]), ["x.jpg"], batch_size=-1))
