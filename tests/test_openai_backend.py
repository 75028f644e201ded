"""tagging.vlm.openai_backend against a real local HTTP server that answers as each test scripts.

The server (tests/fake_vlm_server.py) listens on 127.0.0.1 only and stops at the
end of each test. A test against a real ``mlx_vlm.server`` with a tiny model
lives with the mlx backend's tests. None of these tests needs the database.
"""

from __future__ import annotations

import base64
import email.utils
import io
import time
import types

import pytest
from PIL import Image

import tagging.vlm
from tagging.availability import ModelUnavailable
from tagging.captions import parse_caption
from tagging.vlm import CaptionError, CaptionRequest, clear_backends, get_backend
from tagging.vlm import openai_backend
from tagging.vlm.openai_backend import OpenAIBackend
from tests.fake_vlm_server import (
    GOOD_CAPTION,
    MALFORMED_CAPTION,
    TRUNCATED_CAPTION,
    FakeVLMServer,
    Reply,
    caption_reply,
    closed_port_url,
    error_reply,
    not_json_reply,
    slow_reply,
)

MODEL = "qwen2.5vl:3b"


@pytest.fixture
def server():
    with FakeVLMServer(models=[MODEL, "llava:latest"]) as fake:
        yield fake


def make_backend(url: str, model: str = MODEL, **kwargs) -> OpenAIBackend:
    kwargs = {"timeout": 5, "backoff": 0.01, **kwargs}
    return OpenAIBackend(url, model, **kwargs)


def photo(size=(64, 48), color=(200, 120, 40)) -> Image.Image:
    return Image.new("RGB", size, color)


def request(prompt: str = "Describe this photo as JSON.") -> CaptionRequest:
    return CaptionRequest(image=photo(), prompt=prompt)


# --- captions -----------------------------------------------------------------------------


def test_it_returns_the_caption_and_token_counts(server):
    [output] = make_backend(server.url).caption([request()])
    assert output.text == GOOD_CAPTION
    assert (output.prompt_tokens, output.output_tokens) == (812, 95)
    assert output.latency > 0
    assert output.first_token_latency is None


def test_token_counts_are_none_when_the_server_reports_no_usage(server):
    server.queue(caption_reply("A cat.", prompt_tokens=None))
    [output] = make_backend(server.url).caption([request()])
    assert (output.text, output.prompt_tokens, output.output_tokens) == ("A cat.", None, None)


def test_a_null_content_is_an_empty_caption(server):
    server.queue(caption_reply(None))
    [output] = make_backend(server.url).caption([request()])
    assert output.text == ""


def test_malformed_and_truncated_captions_come_back_raw_for_the_parser(server):
    server.queue(caption_reply(MALFORMED_CAPTION), caption_reply(TRUNCATED_CAPTION))
    outputs = make_backend(server.url).caption([request(), request()])
    assert [o.text for o in outputs] == [MALFORMED_CAPTION, TRUNCATED_CAPTION]
    assert all(parse_caption(o.text).structured for o in outputs)


def test_the_request_has_the_prompt_and_the_photo_as_a_base64_jpeg_data_url(server):
    make_backend(server.url, max_tokens=123).caption([CaptionRequest(image=photo((80, 60)), prompt="What is this?")])
    [sent] = server.chat_requests()
    assert sent.method == "POST" and sent.path == "/v1/chat/completions"
    assert sent.headers["content-type"] == "application/json"
    body = sent.json
    assert body["model"] == MODEL
    assert body["temperature"] == 0
    assert body["max_tokens"] == 123
    [message] = body["messages"]
    assert message["role"] == "user"
    text, image = message["content"]
    assert text == {"type": "text", "text": "What is this?"}
    assert image["type"] == "image_url"
    prefix = "data:image/jpeg;base64,"
    assert image["image_url"]["url"].startswith(prefix)
    decoded = Image.open(io.BytesIO(base64.b64decode(image["image_url"]["url"][len(prefix) :])))
    assert (decoded.format, decoded.size, decoded.mode) == ("JPEG", (80, 60), "RGB")


def test_a_photo_that_is_not_rgb_is_sent_as_an_rgb_jpeg(server):
    make_backend(server.url).caption([CaptionRequest(image=Image.new("RGBA", (10, 10)), prompt="x")])
    url = server.chat_requests()[0].json["messages"][0]["content"][1]["image_url"]["url"]
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).mode == "RGB"


def test_the_api_key_is_sent_as_a_bearer_header_only_when_set(server):
    make_backend(server.url).caption([request()])
    make_backend(server.url, api_key="sk-local-123").caption([request()])
    without, with_key = server.chat_requests()
    assert "authorization" not in without.headers
    assert with_key.headers["authorization"] == "Bearer sk-local-123"

    make_backend(server.url, api_key="sk-local-123").check_available()
    assert server.requests[-1].headers["authorization"] == "Bearer sk-local-123"


def test_several_photos_go_one_per_request(server):
    outputs = make_backend(server.url).caption([request("a"), request("b"), request("c")])
    assert len(outputs) == 3
    assert [r.json["messages"][0]["content"][0]["text"] for r in server.chat_requests()] == ["a", "b", "c"]


def test_concurrent_requests_overlap_and_keep_their_order(server):
    def echo(body):
        return caption_reply("answer to " + body["messages"][0]["content"][0]["text"]).body

    server.default = Reply(body=echo, delay=0.5)
    backend = make_backend(server.url, concurrency=3)
    assert backend.supports_batching
    started = time.monotonic()
    outputs = backend.caption([request("p0"), request("p1"), request("p2")])
    elapsed = time.monotonic() - started
    assert [o.text for o in outputs] == ["answer to p0", "answer to p1", "answer to p2"]
    assert elapsed < 1.3  # one after another would take 1.5 s
    assert all(o.latency == pytest.approx(elapsed / 3, rel=0.2) for o in outputs)


def test_one_failure_among_concurrent_requests_fails_the_call(server):
    server.queue(caption_reply("ok"), error_reply(400, "image too small"), caption_reply("ok"))
    with pytest.raises(CaptionError, match="answered 400: image too small"):
        make_backend(server.url, concurrency=3).caption([request(), request(), request()])


# --- retries --------------------------------------------------------------------------------


def test_it_retries_after_a_500_and_then_succeeds(server):
    server.queue(error_reply(500, "llama runner process has terminated"), caption_reply(GOOD_CAPTION))
    [output] = make_backend(server.url).caption([request()])
    assert output.text == GOOD_CAPTION
    assert len(server.chat_requests()) == 2


def test_it_waits_as_long_as_retry_after_says_on_a_429(server):
    server.queue(error_reply(429, "Rate limit reached", headers={"Retry-After": "1"}), caption_reply(GOOD_CAPTION))
    started = time.monotonic()
    [output] = make_backend(server.url).caption([request()])
    assert output.text == GOOD_CAPTION
    assert time.monotonic() - started >= 0.95
    assert len(server.chat_requests()) == 2


def test_a_retry_after_beyond_reason_is_reported_not_waited_for(server):
    server.queue(error_reply(429, "quota exceeded", headers={"Retry-After": "3600"}))
    started = time.monotonic()
    with pytest.raises(CaptionError, match="wait 3600 s") as error:
        make_backend(server.url).caption([request()])
    assert time.monotonic() - started < 2
    assert server.url in str(error.value)


def test_retry_after_is_read_as_seconds_or_an_http_date():
    in_30_s = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert openai_backend._retry_after("2") == 2.0
    assert 25 < openai_backend._retry_after(in_30_s) <= 30
    assert openai_backend._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert openai_backend._retry_after("soon") is None
    assert openai_backend._retry_after(None) is None


def test_it_gives_up_after_the_configured_retries(server):
    server.queue(*[error_reply(503, "loading model")] * 3)
    with pytest.raises(CaptionError) as error:
        make_backend(server.url, retries=2).caption([request()])
    assert str(error.value) == f"server at {server.url} answered 503: loading model (after 3 attempts)"
    assert error.value.transient and error.value.status == 503
    assert len(server.chat_requests()) == 3


def test_a_client_error_is_not_retried(server):
    server.queue(error_reply(400, "invalid image"), caption_reply(GOOD_CAPTION))
    with pytest.raises(CaptionError, match="answered 400: invalid image"):
        make_backend(server.url).caption([request()])
    assert len(server.chat_requests()) == 1


# --- failures -------------------------------------------------------------------------------


def test_a_slow_answer_times_out_naming_the_server_and_the_time(server):
    server.queue(slow_reply(30))
    started = time.monotonic()
    with pytest.raises(CaptionError) as error:
        make_backend(server.url, timeout=0.5).caption([request()])
    assert time.monotonic() - started < 3
    assert str(error.value) == f"server at {server.url}: no answer within 0.5 s"
    assert len(server.chat_requests()) == 1  # a model this slow is not asked again


def test_a_404_for_a_missing_model_names_the_model(server):
    with pytest.raises(CaptionError) as error:
        make_backend(server.url, model="llava:34b").caption([request()])
    message = str(error.value)
    assert message == f'server at {server.url} answered 404: model "llava:34b" not found, try pulling it first'
    assert not error.value.transient
    assert len(server.chat_requests()) == 1


def test_a_404_whose_message_omits_the_model_still_names_it(server):
    server.queue(error_reply(404, "Not Found"))
    with pytest.raises(CaptionError, match=r"answered 404: Not Found \(asked for model 'qwen2.5vl:3b'"):
        make_backend(server.url).caption([request()])


def test_error_bodies_in_other_dialects_are_read(server):
    server.queue(
        Reply(status=400, body={"error": "model 'x' does not support images"}),  # Ollama's native shape
        Reply(status=422, body={"detail": "Invalid image URL"}),  # FastAPI (mlx_vlm.server)
        Reply(status=400, body=b"bad request"),
    )
    backend = make_backend(server.url)
    for expected in ["does not support images", "Invalid image URL", "bad request"]:
        with pytest.raises(CaptionError, match=expected):
            backend.caption([request()])


def test_a_body_that_is_not_json_is_an_error_naming_the_server(server):
    server.queue(not_json_reply())
    with pytest.raises(CaptionError) as error:
        make_backend(server.url).caption([request()])
    assert str(error.value).startswith(f"server at {server.url} answered 200 with a body that is not JSON: <html>")


def test_an_answer_without_choices_is_an_error(server):
    server.queue(Reply(body={"object": "chat.completion", "choices": []}))
    with pytest.raises(CaptionError, match=r"without choices\[0\]\.message\.content"):
        make_backend(server.url).caption([request()])


def test_a_server_that_is_down_is_a_caption_error_after_retries():
    url = closed_port_url()
    with pytest.raises(CaptionError) as error:
        make_backend(url, retries=1).caption([request()])
    assert str(error.value).startswith(f"server at {url}: could not connect (")
    assert str(error.value).endswith("(after 2 attempts)")


def test_a_base_url_that_is_not_http_is_refused():
    for url in ["127.0.0.1:11434/v1", "ftp://host/v1", ""]:
        with pytest.raises(ValueError, match="SHOEBOX_OPENAI_BASE_URL"):
            OpenAIBackend(url, MODEL)


# --- check_available --------------------------------------------------------------------------


def test_check_available_passes_when_the_server_lists_the_model(server):
    make_backend(server.url).check_available()
    assert server.requests[-1].method == "GET" and server.requests[-1].path == "/v1/models"


def test_check_available_accepts_ollamas_implicit_latest_tag(server):
    make_backend(server.url, model="llava").check_available()
    make_backend(server.url + "/", model="llava:latest").check_available()


def test_check_available_for_a_server_that_is_down_says_where_and_how_to_fix_it():
    url = closed_port_url()
    with pytest.raises(ModelUnavailable) as error:
        make_backend(url).check_available()
    message = error.value.message
    assert error.value.model == MODEL
    assert f"no OpenAI-compatible server answers at {url}" in message
    assert f"`ollama pull {MODEL}`" in message
    assert "SHOEBOX_OPENAI_BASE_URL" in message


def test_check_available_for_a_model_the_server_lacks_lists_what_it_has(server):
    with pytest.raises(ModelUnavailable) as error:
        make_backend(server.url, model="moondream:1.8b").check_available()
    message = error.value.message
    assert f"the server at {server.url} does not offer it (it offers: {MODEL}, llava:latest)" in message
    assert "`ollama pull moondream:1.8b`" in message
    assert "SHOEBOX_OPENAI_MODEL" in message


def test_check_available_for_a_base_url_without_v1_suggests_it(server):
    with pytest.raises(ModelUnavailable, match="usually ends in /v1"):
        make_backend(server.url.removesuffix("/v1")).check_available()


def test_check_available_for_a_refused_key_names_the_setting(server):
    server.queue_models(error_reply(401, "Incorrect API key provided"))
    with pytest.raises(ModelUnavailable, match="SHOEBOX_OPENAI_API_KEY"):
        make_backend(server.url).check_available()


def test_check_available_for_something_that_is_not_a_model_list(server):
    server.queue_models(Reply(body={"models": []}))
    with pytest.raises(ModelUnavailable, match="not an OpenAI model list"):
        make_backend(server.url).check_available()


def test_check_available_is_quick_even_when_the_server_hangs(server, monkeypatch):
    monkeypatch.setattr(openai_backend, "CHECK_TIMEOUT", 0.3)
    server.queue_models(Reply(body={"object": "list", "data": []}, delay=30))
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="no answer within 0.3 s"):
        make_backend(server.url, timeout=120).check_available()
    assert time.monotonic() - started < 2


# --- get_backend -----------------------------------------------------------------------------


@pytest.fixture
def fresh_backends():
    clear_backends()
    yield
    clear_backends()


def test_get_backend_builds_the_openai_backend_from_settings_once(settings, fresh_backends):
    settings.CAPTION_BACKEND = "openai"
    settings.CAPTION_MODEL = "llava:7b"
    settings.OPENAI_BASE_URL = "http://gpu-box.lan:11434/v1"
    settings.OPENAI_API_KEY = "sk-1"
    settings.OPENAI_TIMEOUT = 33.0
    settings.OPENAI_RETRIES = 4
    settings.CAPTION_MAX_NEW_TOKENS = 256
    backend = get_backend()
    assert isinstance(backend, OpenAIBackend)
    assert (backend.name, backend.model_id, backend.base_url) == ("openai", "llava:7b", "http://gpu-box.lan:11434/v1")
    assert (backend.api_key, backend.timeout, backend.retries, backend.max_tokens) == ("sk-1", 33.0, 4, 256)
    assert backend.concurrency == 1 and not backend.supports_batching
    assert get_backend() is backend
    assert get_backend("openai", "llava:7b") is backend
    assert get_backend("openai", "other:1b") is not backend


def test_get_backend_by_name_uses_that_backends_model(settings, fresh_backends):
    settings.CAPTION_BACKEND = "transformers"
    settings.CAPTION_MODEL = "HuggingFaceTB/SmolVLM-256M-Instruct"
    settings.OPENAI_MODEL = "qwen2.5vl:7b"
    assert get_backend("openai").model_id == "qwen2.5vl:7b"


def test_get_backend_passes_the_documented_constructor_arguments(settings, fresh_backends, monkeypatch):
    built = []

    class Recorder:
        def __init__(self, *args, **kwargs):
            built.append((args, kwargs))

    fake_module = types.SimpleNamespace(TransformersBackend=Recorder, MlxBackend=Recorder)
    monkeypatch.setattr(tagging.vlm.importlib, "import_module", lambda name: fake_module)
    settings.CAPTION_BACKEND = "transformers"
    settings.CAPTION_MODEL = "/models/smolvlm"
    settings.CAPTION_MAX_NEW_TOKENS = 300
    settings.CAPTION_DTYPE = "bfloat16"
    settings.CAPTION_IMAGE_SPLITTING = False
    get_backend()
    get_backend("mlx", "/models/smolvlm-mlx")
    assert built == [
        (("/models/smolvlm",), {"max_new_tokens": 300, "dtype": "bfloat16", "image_splitting": False}),
        (("/models/smolvlm-mlx",), {"max_new_tokens": 300}),
    ]


def test_get_backend_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="unknown caption backend 'llamafile'"):
        get_backend("llamafile")


def test_an_answer_larger_than_any_caption_is_refused_without_reading_it_all(server, monkeypatch):
    monkeypatch.setattr(openai_backend, "MAX_RESPONSE_BYTES", 256 * 1024)
    server.queue(Reply(body=b"x" * (4 * 1024 * 1024)))
    backend = make_backend(server.url, retries=0)
    with pytest.raises(CaptionError, match="larger than"):
        backend.caption([request()])
