"""Simulated Shoebox users for ``bench/load_bench.py``: signed in, one task per page kind, every response checked.

``bench/load_bench.py`` runs one headless locust process per phase and
describes the phase in a JSON plan named by ``LOAD_BENCH_PLAN``:

- ``pages``: the page kinds this phase visits (equal weights), ``urls``: URLs per kind;
- ``username`` / ``password``: a staff user (the review pages need staff);
- ``users``, ``think`` ([min, max] seconds between clicks, or null for none);
- ``warmup`` and ``seconds``: how long to run before and inside the measured window;
- ``pids``: the server's process trees (``server_usage.server_pids``);
- ``memory_every``: seconds between memory samples (0: none); ``out``: where the result goes.

Each user signs in on start (the login page, then the form with its CSRF
token; django-axes counts only failures). Nothing is measured until every
user is signed in: a password check costs hundreds of milliseconds of CPU
and is not a page. Then, after the warm-up, the window opens: every
response time is kept (exact, not locust's rounded histogram), the server's
CPU time is read before and after, and the result is written as JSON;
then locust stops. A response counts as failed unless it is a 200 of the
expected content type (a redirect to the login page, a 500 or the
placeholder image of a missing thumbnail all fail).

By hand, against a running server and a plan of that shape (the bench removes its own, which
holds the password): ``LOAD_BENCH_PLAN=plan.json .venv/bin/locust -f bench/locustfile.py
--headless -u 20 -r 20 --host http://127.0.0.1:8000``.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import gevent
import psutil
from gevent.event import Event
from locust import FastHttpUser, between, constant, events

sys.path.insert(0, str(Path(__file__).resolve().parent))
import server_usage  # noqa: E402

try:
    PLAN = json.loads(Path(os.environ["LOAD_BENCH_PLAN"]).read_text())
except KeyError:
    raise SystemExit("LOAD_BENCH_PLAN must name the phase's plan (JSON): bench/load_bench.py writes it") from None

LOGIN_URL = "/accounts/login/"
# Pages fetched as htmx fragments (what the browser asks for); the others as full pages.
HTMX_PAGES = {"grid_deep"}
CONTENT_TYPES = {"thumbnail": "image/jpeg"}  # everything else: text/html
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

_ready = Event()  # every user is signed in
_signed_in = 0
_login_errors: list[str] = []
_recording = False
_times: dict[str, list[float]] = {kind: [] for kind in PLAN["pages"]}
_failures: Counter = Counter()
_errors: Counter = Counter()


def _problem(kind: str, response) -> str | None:
    """Why ``response`` is not the page asked for, or None."""
    if response.status_code != 200:
        where = response.headers.get("Location") if 300 <= response.status_code < 400 else None
        return f"status {response.status_code}" + (f" to {where}" if where else "")
    content_type = response.headers.get("Content-Type", "")
    wanted = CONTENT_TYPES.get(kind, "text/html")
    if not content_type.startswith(wanted):
        return f"{content_type or 'no content type'} instead of {wanted}"
    return None


def _visit(kind: str):
    def visit(user: Visitor) -> None:
        user.visit(kind)

    visit.__name__ = kind
    return visit


class Visitor(FastHttpUser):
    wait_time = between(*PLAN["think"]) if PLAN["think"] else constant(0)
    tasks = [_visit(kind) for kind in PLAN["pages"]]

    def on_start(self) -> None:
        global _signed_in
        try:
            self.sign_in()
        except Exception as exc:  # reported by the measuring greenlet, which then stops the run
            _login_errors.append(f"{type(exc).__name__}: {exc}")
        _signed_in += 1
        if _signed_in >= PLAN["users"]:
            _ready.set()
        _ready.wait()

    def sign_in(self) -> None:
        page = self.client.get(LOGIN_URL, name="login")
        found = _CSRF_INPUT.search(page.text or "")
        if page.status_code != 200 or not found:
            raise RuntimeError(f"login page: status {page.status_code}, CSRF token {'found' if found else 'missing'}")
        form = {"username": PLAN["username"], "password": PLAN["password"], "csrfmiddlewaretoken": found[1]}
        with self.client.post(LOGIN_URL, data=urlencode(form), name="login", allow_redirects=False,
                              catch_response=True,
                              headers={"Content-Type": "application/x-www-form-urlencoded"}) as response:
            where = response.headers.get("Location", "")
            if response.status_code != 302 or LOGIN_URL in where:
                response.failure(f"login refused: status {response.status_code}")
                raise RuntimeError(f"login refused: status {response.status_code} {where}")

    def visit(self, kind: str) -> None:
        url = random.choice(PLAN["urls"][kind])
        headers = {"HX-Request": "true"} if kind in HTMX_PAGES else None
        with self.client.get(url, name=kind, headers=headers, allow_redirects=False,
                             catch_response=True) as response:
            problem = _problem(kind, response)
            if problem:
                response.failure(problem)
            else:
                response.success()


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception=None, **kwargs) -> None:
    if not _recording or name not in _times:
        return
    _times[name].append(response_time)
    if exception is not None:
        _failures[name] += 1
        _errors[f"{name}: {exception}"[:200]] += 1


def _measure(environment) -> None:
    """Wait for the sign-ins and the warm-up, measure the window, write the result, stop locust."""
    global _recording
    out = Path(PLAN["out"])
    pids = {name: int(pid) for name, pid in PLAN["pids"].items()}
    try:
        if not _ready.wait(timeout=PLAN.get("login_timeout", 180)):
            raise RuntimeError(f"only {_signed_in} of {PLAN['users']} users signed in")
        if _login_errors:
            raise RuntimeError(f"{len(_login_errors)} sign-ins failed, first: {_login_errors[0]}")
        gevent.sleep(PLAN["warmup"])
        me = psutil.Process()
        memory = []
        cpu0, own0 = server_usage.cpu_by_part(pids), sum(me.cpu_times()[:2])
        t0 = time.monotonic()
        _recording = True
        end = t0 + PLAN["seconds"]
        every = PLAN.get("memory_every") or 0
        while True:
            if every:
                memory.append({"t": time.monotonic() - t0, "web": server_usage.rss_mib(pids["web"]),
                               "worker": server_usage.rss_mib(pids["worker"])})
            left = end - time.monotonic()
            if left <= 0:
                break
            gevent.sleep(min(every or left, left))
        _recording = False
        wall = time.monotonic() - t0
        cpu1, own1 = server_usage.cpu_by_part(pids), sum(me.cpu_times()[:2])
        result = {
            "seconds": wall, "users": PLAN["users"],
            "cpu": {name: cpu1[name] - cpu0[name] for name in cpu0}, "locust_cpu": own1 - own0,
            "times_ms": _times, "failures": dict(_failures), "errors": dict(_errors.most_common(10)),
            "memory": memory,
        }
    except Exception as exc:  # the driver reads the reason from the result file
        result = {"error": f"{type(exc).__name__}: {exc}"}
    part = out.with_name(out.name + ".part")
    part.write_text(json.dumps(result))
    os.replace(part, out)
    environment.runner.quit()


@events.test_start.add_listener
def _start_measuring(environment, **kwargs) -> None:
    gevent.spawn(_measure, environment)
