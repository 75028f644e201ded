"""Captions from any OpenAI-compatible server: Ollama, llama.cpp's llama-server, LM Studio, vLLM, mlx_vlm.server.

One photo per request: ``POST {base_url}/chat/completions`` with the prompt and
the photo as a base64 JPEG data URL, ``temperature: 0``. The caption is
``choices[0].message.content``; token counts come from ``usage`` when the
server reports it.

The server may run on another machine (``SHOEBOX_OPENAI_BASE_URL=http://gpu-box:11434/v1``);
nothing here assumes localhost. With ``concurrency`` > 1 several photos are sent
at once from a small thread pool: servers such as vLLM (and llama-server with
``--parallel``) batch concurrent requests internally, so throughput rises while
each request stays one photo. Ollama and mlx_vlm.server mostly queue them, so
the default is 1.

Failures are ``CaptionError`` s whose message names the server and what went
wrong. Connection errors, 5xx and 429 answers are retried ``retries`` times
with exponential backoff, honouring a ``Retry-After`` of up to
``MAX_RETRY_AFTER`` seconds. A request the server has not answered within
``timeout`` seconds is not retried: a model that slow will not be faster on the
next try, and a worker's task has a time limit of its own.

Only the standard library is used (``http.client``): separate connect and read
timeouts, no extra dependency. Proxy environment variables are not consulted:
the server is expected on this machine or the local network.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import io
import json
import logging
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tagging.availability import ModelUnavailable
from tagging.vlm.base import CaptionBackend, CaptionError, CaptionOutput, CaptionRequest

__all__ = ["OpenAIBackend"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # seconds to open a connection (capped by the request timeout)
CHECK_TIMEOUT = 5.0  # seconds for the whole availability check
# An answer larger than this is refused (a caption is a few kilobytes; a misbehaving server can send gigabytes).
MAX_RESPONSE_BYTES = 8 * 2**20
MAX_RETRY_AFTER = 60.0  # a longer Retry-After is reported, not waited for
JPEG_QUALITY = 90
USER_AGENT = "Shoebox-captions"


@dataclass
class _Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class _NoAnswer(Exception):
    """The exchange failed before a complete HTTP answer arrived."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class OpenAIBackend(CaptionBackend):
    """A caption backend that asks an OpenAI-compatible HTTP server."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "",
        timeout: float = 120,
        retries: int = 2,
        max_tokens: int = 400,
        concurrency: int = 1,
        backoff: float = 1.0,
    ):
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"SHOEBOX_OPENAI_BASE_URL={base_url!r} is not an http(s) URL, e.g. http://127.0.0.1:11434/v1"
            )
        if timeout <= 0 or retries < 0 or concurrency < 1 or max_tokens < 1:
            raise ValueError("timeout and max_tokens must be positive, retries >= 0 and concurrency >= 1")
        self.base_url = base_url.strip().rstrip("/")
        self.model = self.model_id = model
        self.api_key = api_key
        self.timeout = float(timeout)
        self.retries = retries
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        self.backoff = backoff
        self.supports_batching = concurrency > 1
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/")

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.base_url!r}, {self.model!r})"

    # --- availability -------------------------------------------------------------------

    def check_available(self) -> None:
        """GET ``{base_url}/models`` (quickly, no retries); raise ``ModelUnavailable`` with a fix."""
        where = f"the server at {self.base_url}"
        try:
            answer = self._exchange("GET", "/models", None, connect_timeout=CHECK_TIMEOUT, read_timeout=CHECK_TIMEOUT)
        except _NoAnswer as exc:
            raise ModelUnavailable(
                self.model,
                f"no OpenAI-compatible server answers at {self.base_url} ({exc})",
                f"Start the server there (for Ollama: `ollama serve`, then `ollama pull {self.model}`), "
                "or set SHOEBOX_OPENAI_BASE_URL to where it runs — another machine works, "
                "e.g. http://gpu-box:11434/v1.",
            ) from None
        if answer.status in (401, 403):
            raise ModelUnavailable(
                self.model,
                f"{where} refused the API key ({answer.status}: {_error_message(answer.body)})",
                "Set SHOEBOX_OPENAI_API_KEY to a key the server accepts.",
            )
        if answer.status == 404:
            raise ModelUnavailable(
                self.model,
                f"{where} has no {self._path}/models endpoint (404)",
                "Check SHOEBOX_OPENAI_BASE_URL: for OpenAI-compatible servers it usually ends in /v1, "
                "e.g. http://127.0.0.1:11434/v1 for Ollama or http://127.0.0.1:8080/v1 for llama-server.",
            )
        if answer.status != 200:
            raise ModelUnavailable(
                self.model,
                f"{where} answered {answer.status} to GET /models: {_error_message(answer.body)}",
                "Check the server's log; it may still be starting.",
            )
        try:
            listing = json.loads(answer.body)
            offered = [str(entry["id"]) for entry in listing["data"]]
            aliases = {str(alias) for entry in listing["data"] for alias in (entry.get("aliases") or [])}
        except (ValueError, KeyError, TypeError):
            raise ModelUnavailable(
                self.model,
                f"{where} answered GET /models with something that is not an OpenAI model list: "
                f"{_snippet(answer.body)}",
                "Check that SHOEBOX_OPENAI_BASE_URL points at an OpenAI-compatible API (it usually ends in /v1).",
            ) from None
        if not _offers(self.model, offered, aliases):
            listed = ", ".join(offered[:15]) + (" …" if len(offered) > 15 else "") if offered else "nothing"
            raise ModelUnavailable(
                self.model,
                f"{where} does not offer it (it offers: {listed})",
                f"Load it there (for Ollama: `ollama pull {self.model}`), "
                "or set SHOEBOX_OPENAI_MODEL to a model the server offers.",
            )

    # --- captioning ---------------------------------------------------------------------

    def caption(self, requests: list[CaptionRequest]) -> list[CaptionOutput]:
        """Caption each request (one HTTP request per photo), ``concurrency`` at a time.

        Outputs come back in request order. If any request fails, the first
        failure (in request order) is raised once the others have finished.
        ``latency`` is each request's own time when they run one at a time,
        and the wall time divided by their number when they run concurrently.
        """
        if not requests:
            return []
        workers = min(self.concurrency, len(requests))
        if workers == 1:
            return [self._caption_one(request) for request in requests]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-caption") as pool:
            futures = [pool.submit(self._caption_one, request) for request in requests]
        outputs = [future.result() for future in futures]  # raises the first failure
        share = (time.monotonic() - started) / len(outputs)
        for output in outputs:
            output.latency = share
        return outputs

    def _caption_one(self, request: CaptionRequest) -> CaptionOutput:
        payload = {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": request.prompt},
                        {"type": "image_url", "image_url": {"url": _jpeg_data_url(request.image)}},
                    ],
                }
            ],
            "temperature": 0,
            "max_tokens": request.budget(self.max_tokens),
            "stream": False,
        }
        started = time.monotonic()
        answer = self._post_with_retries("/chat/completions", json.dumps(payload).encode())
        latency = time.monotonic() - started
        text, prompt_tokens, output_tokens = self._read_completion(answer)
        return CaptionOutput(text=text, prompt_tokens=prompt_tokens, output_tokens=output_tokens, latency=latency)

    def _post_with_retries(self, path: str, body: bytes) -> _Answer:
        """POST, retrying connection errors, 5xx and 429; return a 2xx answer or raise CaptionError."""
        where = f"server at {self.base_url}"
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                answer = self._exchange(
                    "POST", path, body, connect_timeout=min(CONNECT_TIMEOUT, self.timeout), read_timeout=self.timeout
                )
            except _NoAnswer as exc:
                if not exc.retryable or attempt == attempts:
                    tried = f" (after {attempt} attempts)" if attempt > 1 else ""
                    raise CaptionError(f"{where}: {exc}{tried}", transient=True) from None
                delay = self._backoff_delay(attempt)
                log.warning("%s: %s; trying again in %.1f s", where, exc, delay)
                time.sleep(delay)
                continue

            if 200 <= answer.status < 300:
                return answer
            message = _error_message(answer.body)
            retryable = answer.status == 429 or answer.status >= 500
            if not retryable:
                raise self._refusal(answer.status, message)
            retry_after = _retry_after(answer.headers.get("Retry-After"))
            if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                raise CaptionError(
                    f"{where} answered {answer.status}: {message}; "
                    f"it asks to wait {retry_after:.0f} s before trying again",
                    status=answer.status,
                )
            if attempt == attempts:
                tried = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise CaptionError(f"{where} answered {answer.status}: {message}{tried}", status=answer.status)
            delay = retry_after if retry_after is not None else self._backoff_delay(attempt)
            log.warning("%s answered %s (%s); trying again in %.1f s", where, answer.status, message, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _refusal(self, status: int, message: str) -> CaptionError:
        """A 4xx answer other than 429: not worth retrying; say what to fix."""
        text = f"server at {self.base_url} answered {status}: {message}"
        if status == 404 and self.model not in message:
            text += f" (asked for model '{self.model}'; check SHOEBOX_OPENAI_MODEL against the server's /models)"
        elif status in (401, 403):
            text += " (check SHOEBOX_OPENAI_API_KEY)"
        elif status == 413:
            text += " (the photo is too large for the server: lower SHOEBOX_CAPTION_IMAGE_SIZE)"
        return CaptionError(text, transient=False, status=status)

    def _read_completion(self, answer: _Answer) -> tuple[str, int | None, int | None]:
        where = f"server at {self.base_url}"
        try:
            reply = json.loads(answer.body)
        except ValueError:
            raise CaptionError(
                f"{where} answered {answer.status} with a body that is not JSON: {_snippet(answer.body)}",
                transient=False,
                status=answer.status,
            ) from None
        try:
            message = reply["choices"][0]["message"]
            content = message.get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise CaptionError(
                f"{where} answered without choices[0].message.content: {_snippet(answer.body)}",
                transient=False,
                status=answer.status,
            ) from None
        if isinstance(content, list):  # some servers return content parts
            content = "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
        if content is not None and not isinstance(content, str):
            raise CaptionError(f"{where} answered with non-text content: {_snippet(answer.body)}", transient=False)
        usage = reply.get("usage") if isinstance(reply, dict) else None
        usage = usage if isinstance(usage, dict) else {}
        return content or "", _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))

    def _backoff_delay(self, attempt: int) -> float:
        return self.backoff * 2 ** (attempt - 1)

    # --- HTTP ---------------------------------------------------------------------------

    def _headers(self, body: bytes | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _exchange(
        self, method: str, path: str, body: bytes | None, *, connect_timeout: float, read_timeout: float
    ) -> _Answer:
        """One HTTP exchange with a connect timeout and an overall deadline for the answer."""
        if self._scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=connect_timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=connect_timeout)
        try:
            try:
                conn.connect()
            except (socket.timeout, TimeoutError):
                raise _NoAnswer(f"no connection within {connect_timeout:g} s", retryable=True) from None
            except ssl.SSLCertVerificationError as exc:
                raise _NoAnswer(f"its TLS certificate was refused ({exc.verify_message})", retryable=False) from None
            except OSError as exc:
                raise _NoAnswer(f"could not connect ({_os_error(exc)})", retryable=True) from None

            deadline = time.monotonic() + read_timeout
            no_answer = f"no answer within {read_timeout:g} s"
            sock = conn.sock  # kept: http.client lets go of it when the server closes after answering
            try:
                sock.settimeout(read_timeout)
                conn.request(method, self._path + path, body=body, headers=self._headers(body))
                response = conn.getresponse()
                chunks, size = [], 0
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise _NoAnswer(no_answer, retryable=False)
                    sock.settimeout(remaining)
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:  # a caption is kilobytes: this is not an answer to keep
                        raise _NoAnswer(f"the answer is larger than {MAX_RESPONSE_BYTES:,} bytes", retryable=False)
                    chunks.append(chunk)
                return _Answer(response.status, response.headers, b"".join(chunks))
            except (socket.timeout, TimeoutError):
                raise _NoAnswer(no_answer, retryable=False) from None
            except (http.client.HTTPException, OSError) as exc:
                raise _NoAnswer(f"the connection failed ({_os_error(exc)})", retryable=True) from None
        finally:
            conn.close()


# --- helpers -------------------------------------------------------------------------------


def _jpeg_data_url(image) -> str:
    """The image as ``data:image/jpeg;base64,…``."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _offers(model: str, offered: list[str], aliases: set[str]) -> bool:
    """Whether a /models listing includes ``model`` (Ollama's implicit ``:latest`` tag counts)."""
    names = set(offered) | aliases
    wanted = {model, model.rstrip("/")}
    if ":" not in model:
        wanted.add(f"{model}:latest")
    elif model.endswith(":latest"):
        wanted.add(model.removesuffix(":latest"))
    return bool(wanted & names)


def _error_message(body: bytes) -> str:
    """The server's own words from an error body, whatever its dialect.

    OpenAI, Ollama and llama-server: ``{"error": {"message": …}}``; Ollama's
    native API: ``{"error": "…"}``; FastAPI servers (mlx_vlm): ``{"detail": …}``.
    """
    try:
        data = json.loads(body)
    except ValueError:
        return _snippet(body) or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _one_line(str(error["message"]))
        if isinstance(error, str) and error:
            return _one_line(error)
        for key in ("detail", "message"):
            if data.get(key):
                detail = data[key]
                return _one_line(detail if isinstance(detail, str) else json.dumps(detail))
    return _snippet(body)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _snippet(body: bytes, limit: int = 200) -> str:
    text = _one_line(body.decode("utf-8", "replace"))
    return text if len(text) <= limit else text[:limit] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _os_error(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
