"""Access controls: login rate limiting (django-axes), password validators, secure cookies and HSTS
behind https, and a Content-Security-Policy that no page or template breaks."""

from __future__ import annotations

import re
import runpy
from datetime import datetime, timezone
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from gallery.models import Library
from tests.factories import make_jpeg, make_photo
from tests.test_browser import browser  # noqa: F401  (a fixture; it asks for this module's `gallery`)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"


def csp_directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


# --- login rate limiting --------------------------------------------------------------------------

def log_in(client, username, password, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


@pytest.mark.django_db
def test_failed_logins_lock_out_that_user_from_that_address_even_with_the_right_password(
        client, staff, viewer, settings):
    assert settings.AXES_FAILURE_LIMIT == 5 and settings.LOGIN_COOLOFF_MINUTES == 15  # the defaults
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = log_in(client, "owner", "wrong-password")
        assert response.status_code == 200 and b"didn't match" in response.content
    response = log_in(client, "owner", "wrong-password")
    assert response.status_code == 429

    response = log_in(client, "owner", "pw-owner-123")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many login attempts" in page and "try again in 15 minutes" in page
    assert "Traceback" not in page and "Content-Security-Policy" in response
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302, "still signed out"

    # Another user from the same address, and the same user from another address, are not affected.
    assert log_in(client, "guest", "pw-guest-123")["Location"] == "/"
    client.logout()
    assert log_in(client, "owner", "pw-owner-123", REMOTE_ADDR="192.0.2.7")["Location"] == "/"


@pytest.mark.django_db
def test_behind_a_trusted_proxy_one_visitors_failures_do_not_lock_out_the_others(client, staff, settings):
    settings.TRUSTED_PROXIES = 1
    proxy = {"REMOTE_ADDR": "10.0.0.2"}  # every request arrives from the proxy
    attacker = {**proxy, "HTTP_X_FORWARDED_FOR": "owner-spoofed, 203.0.113.9"}  # the proxy appended the last
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "owner", "wrong-password", **attacker)
    assert log_in(client, "owner", "pw-owner-123", **attacker).status_code == 429
    owner = {**proxy, "HTTP_X_FORWARDED_FOR": "198.51.100.4"}
    assert log_in(client, "owner", "pw-owner-123", **owner)["Location"] == "/", "the owner, elsewhere, gets in"


def test_the_client_address_is_the_one_the_trusted_proxy_saw(rf, settings):
    from gallery.accounts import client_ip

    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.9, 10.0.0.1")
    settings.TRUSTED_PROXIES = 0
    assert client_ip(request) == "10.0.0.2", "no proxy configured: X-Forwarded-For is the client's own claim"
    settings.TRUSTED_PROXIES = 1
    assert client_ip(request) == "10.0.0.1"
    settings.TRUSTED_PROXIES = 2
    assert client_ip(request) == "203.0.113.9"
    settings.TRUSTED_PROXIES = 5
    assert client_ip(request) == "10.0.0.2", "fewer entries than proxies: the header is not trusted"


@pytest.mark.django_db
def test_fewer_failures_than_the_limit_lock_nothing_and_a_success_clears_them(client, staff, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "owner", "wrong-password")
    assert log_in(client, "owner", "pw-owner-123")["Location"] == "/"
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "owner", "wrong-password").status_code == 200
    assert log_in(client, "owner", "pw-owner-123")["Location"] == "/"


@pytest.mark.django_db
def test_the_limit_and_cool_off_are_the_settings(client, staff, settings):
    from datetime import timedelta

    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=3)
    log_in(client, "owner", "wrong-password")
    response = log_in(client, "owner", "wrong-password")
    assert response.status_code == 429 and "try again in 3 minutes" in response.content.decode()


@pytest.mark.django_db
def test_in_tests_client_login_needs_a_request_under_axes(client, staff):
    """Django's Client.login() calls authenticate() without a request, which axes refuses: tests use
    force_login(), or pass one."""
    from axes.exceptions import AxesBackendRequestParameterRequired
    from django.test import RequestFactory

    with pytest.raises(AxesBackendRequestParameterRequired):
        client.login(username="owner", password="pw-owner-123")
    assert client.login(request=RequestFactory().post("/accounts/login/"), username="owner", password="pw-owner-123")
    assert client.get("/").status_code == 200


# --- settings from the environment ------------------------------------------------------------------

def settings_with(monkeypatch, tmp_path, **env) -> dict:
    """gallery/settings.py evaluated afresh under these environment variables."""
    monkeypatch.setenv("SHOEBOX_DATA_DIR", str(tmp_path))
    for name in ("SHOEBOX_HTTPS", "SHOEBOX_PROXY_SSL_HEADER", "SHOEBOX_HSTS_SUBDOMAINS", "SHOEBOX_HSTS_SECONDS",
                 "SHOEBOX_LOGIN_FAILURES", "SHOEBOX_LOGIN_COOLOFF_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gallery" / "settings.py"))


def test_a_plain_http_install_sends_no_secure_only_settings(monkeypatch, tmp_path):
    s = settings_with(monkeypatch, tmp_path)
    assert (s["SESSION_COOKIE_SECURE"], s["CSRF_COOKIE_SECURE"], s["SECURE_SSL_REDIRECT"]) == (False, False, False)
    assert s["SECURE_HSTS_SECONDS"] == 0 and "SECURE_PROXY_SSL_HEADER" not in s
    assert s["SESSION_COOKIE_HTTPONLY"] and s["SECURE_CONTENT_TYPE_NOSNIFF"]
    assert (s["X_FRAME_OPTIONS"], s["SECURE_REFERRER_POLICY"]) == ("DENY", "same-origin")
    assert (s["AXES_FAILURE_LIMIT"], s["AXES_COOLOFF_TIME"].total_seconds()) == (5, 15 * 60)
    assert s["AUTHENTICATION_BACKENDS"][0] == "axes.backends.AxesStandaloneBackend"
    assert s["MIDDLEWARE"][-1] == "axes.middleware.AxesMiddleware"


def test_shoebox_https_turns_on_secure_cookies_hsts_and_the_redirect(monkeypatch, tmp_path):
    s = settings_with(monkeypatch, tmp_path, SHOEBOX_HTTPS="true", SHOEBOX_PROXY_SSL_HEADER="true",
                      SHOEBOX_LOGIN_FAILURES="3", SHOEBOX_LOGIN_COOLOFF_MINUTES="60")
    assert (s["SESSION_COOKIE_SECURE"], s["CSRF_COOKIE_SECURE"], s["SECURE_SSL_REDIRECT"]) == (True, True, True)
    assert s["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600 and s["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert s["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert (s["AXES_FAILURE_LIMIT"], s["AXES_COOLOFF_TIME"].total_seconds()) == (3, 60 * 60)
    s = settings_with(monkeypatch, tmp_path, SHOEBOX_HTTPS="true", SHOEBOX_HSTS_SUBDOMAINS="true")
    assert s["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True


def test_a_bad_value_is_refused_at_start_up(monkeypatch, tmp_path):
    from gallery.env import ImproperSetting

    with pytest.raises(ImproperSetting, match="SHOEBOX_HTTPS"):
        settings_with(monkeypatch, tmp_path, SHOEBOX_HTTPS="maybe")
    with pytest.raises(ImproperSetting, match="SHOEBOX_LOGIN_FAILURES"):
        settings_with(monkeypatch, tmp_path, SHOEBOX_LOGIN_FAILURES="0")


@pytest.fixture
def https_settings(settings):
    """What SHOEBOX_HTTPS=true and SHOEBOX_PROXY_SSL_HEADER=true set."""
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 365 * 24 * 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    return settings


@pytest.mark.django_db
def test_behind_https_the_cookies_are_secure_and_hsts_is_sent(client, staff, https_settings):
    response = client.get("/accounts/login/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000"
    assert response.cookies["csrftoken"]["secure"] is True
    response = client.post("/accounts/login/", {"username": "owner", "password": "pw-owner-123"}, secure=True)
    assert response["Location"] == "/"
    assert response.cookies["sessionid"]["secure"] is True and response.cookies["sessionid"]["httponly"] is True


@pytest.mark.django_db
def test_behind_a_proxy_its_header_says_https_and_plain_http_is_redirected(client, https_settings):
    response = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200 and "Strict-Transport-Security" in response
    response = client.get("/accounts/login/")
    assert response.status_code == 301 and response["Location"] == "https://testserver/accounts/login/"


@pytest.mark.django_db
def test_on_plain_http_the_cookies_are_not_secure_only(client):
    response = client.get("/accounts/login/")
    assert response.cookies["csrftoken"]["secure"] == "" and "Strict-Transport-Security" not in response
    assert response["X-Frame-Options"] == "DENY" and response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


# --- passwords ---------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_weak_passwords_are_refused_by_the_validators(viewer):
    for weak, reason in [("password123", "too common"), ("short-pw1", "at least 10 characters"),
                         ("80237461958", "entirely numeric"), ("guest1234", "too similar to the username")]:
        with pytest.raises(ValidationError) as error:
            validate_password(weak, viewer)
        assert any(reason in message for message in error.value.messages), (weak, error.value.messages)
    validate_password("a lighthouse at dusk", viewer)


@pytest.mark.django_db
def test_changing_to_a_weak_password_says_why_and_keeps_the_old_one(client, viewer):
    client.force_login(viewer)
    response = client.post("/accounts/password_change/", {
        "old_password": "pw-guest-123", "new_password1": "password123", "new_password2": "password123",
    })
    assert response.status_code == 200 and "too common" in response.content.decode()
    assert User.objects.get(pk=viewer.pk).check_password("pw-guest-123")


@pytest.mark.django_db
def test_ensure_admin_refuses_a_weak_admin_password_with_the_validators_messages(monkeypatch):
    monkeypatch.setenv("SHOEBOX_ADMIN_PASSWORD", "password123")
    with pytest.raises(CommandError) as error:
        call_command("ensure_admin")
    message = str(error.value)
    assert "SHOEBOX_ADMIN_PASSWORD is too weak" in message and "too common" in message
    assert not User.objects.filter(is_superuser=True).exists()


@pytest.mark.django_db
def test_ensure_admin_accepts_a_strong_chosen_password_and_generates_a_strong_one(monkeypatch, capsys):
    monkeypatch.setenv("SHOEBOX_ADMIN_PASSWORD", "a lighthouse at dusk")
    call_command("ensure_admin")
    assert User.objects.get(username="admin").check_password("a lighthouse at dusk")

    User.objects.all().delete()
    monkeypatch.delenv("SHOEBOX_ADMIN_PASSWORD")
    call_command("ensure_admin")
    password = re.search(r"password: (\S+)", capsys.readouterr().out).group(1)
    admin = User.objects.get(username="admin")
    assert admin.check_password(password) and admin.is_superuser
    validate_password(password, admin)


# --- Content-Security-Policy -------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/search/", "/search/?q=beach", "/jobs/", "/review/", "/tags/",
                                 "/accounts/login/"])
def test_every_page_has_a_csp_without_inline_script(client, staff, library, url):
    if url != "/accounts/login/":
        client.force_login(staff)
    response = client.get(url)
    assert response.status_code == 200
    directives = csp_directives(response)
    assert directives["script-src"] == ["'self'"] and directives["style-src"] == ["'self'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert directives["default-src"] == ["'self'"] and directives["img-src"] == ["'self'", "data:"]
    assert directives["frame-ancestors"] == ["'none'"] and directives["object-src"] == ["'none'"]
    assert directives["connect-src"] == directives["base-uri"] == directives["form-action"] == ["'self'"]


@pytest.mark.django_db
def test_the_grid_filters_submit_through_the_script_file(client, staff, library):
    client.force_login(staff)
    page = client.get("/").content.decode()
    assert 'name="library" data-autosubmit data-clears="folder"' in page
    assert "onchange" not in page
    assert '<meta name="htmx-config" content=\'{"includeIndicatorStyles": false, "allowEval": false}\'>' in page


TEMPLATE_COMMENT = re.compile(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}|{#.*?#}", re.S)
INLINE_HANDLER = re.compile(r"<[a-zA-Z][^>]*?\son[a-z]+\s*=", re.S)
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)
INLINE_STYLE = re.compile(r"<[a-zA-Z][^>]*?\sstyle\s*=|<style\b", re.S | re.I)
JAVASCRIPT_URL = re.compile(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", re.I)


def test_no_template_has_inline_script_handlers_or_styles():
    offences = []
    for path in sorted(TEMPLATES.rglob("*")):
        if not path.is_file():
            continue
        text = TEMPLATE_COMMENT.sub("", path.read_text())
        name = path.relative_to(TEMPLATES)
        offences += [f"{name}: inline handler {m.group(0)[-40:]!r}" for m in INLINE_HANDLER.finditer(text)]
        offences += [f"{name}: inline style {m.group(0)[-40:]!r}" for m in INLINE_STYLE.finditer(text)]
        offences += [f"{name}: javascript: URL" for _ in JAVASCRIPT_URL.finditer(text)]
        for attrs, body in SCRIPT.findall(text):
            if body.strip() or "src=" not in attrs:
                offences.append(f"{name}: inline <script> {body.strip()[:40]!r}")
    assert not offences, "\n".join(offences)


def test_the_template_scan_finds_what_it_looks_for():
    assert INLINE_HANDLER.search('<select name="x"\n   onchange="this.form.submit()">')
    assert not INLINE_HANDLER.search("<p>Click on=the button</p>")
    assert SCRIPT.findall("<script>alert(1)</script>") == [("", "alert(1)")]
    assert INLINE_STYLE.search('<td style="padding-left: 1em">') and INLINE_STYLE.search("<style>p{}</style>")


# --- in a real browser: the pages work under the policy ------------------------------------------------

@pytest.fixture
def gallery(tmp_path, django_user_model):
    """Two libraries, one with folders (the `browser` fixture asks for this by name)."""
    family = Library.objects.create(name="Family", root=str(tmp_path / "family"))
    work = Library.objects.create(name="Work", root=str(tmp_path / "work"))
    for library, relpath, year in [(family, "2019/summer/a.jpg", 2019), (family, "2019/winter/b.jpg", 2019),
                                   (family, "2021/c.jpg", 2021), (work, "d.jpg", 2019)]:
        make_jpeg(Path(library.root) / relpath, size=(60, 45))
        make_photo(library, relpath, taken=datetime(year, 6, 1, tzinfo=timezone.utc))
    django_user_model.objects.create_user("owner", password="a-long-password-1", is_staff=True)
    return {"family": family, "work": work}


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_grid_filters_and_every_page_work_under_the_csp_in_chromium(gallery, live_server, browser):  # noqa: F811
    from tagging import tags

    tags.for_path(["Places", "Italy", "Rome"])
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    violations = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(live_server.url + "/accounts/login/")
    page.fill("input[name=username]", "owner")
    page.fill("input[name=password]", "a-long-password-1")
    page.click("button[type=submit]")
    page.wait_for_selector("a.tile")
    assert page.locator("a.tile").count() == 4

    family, work = gallery["family"], gallery["work"]
    with page.expect_navigation():
        page.select_option("select[name=library]", str(family.pk))
    assert page.locator("a.tile").count() == 3
    with page.expect_navigation():
        page.select_option("select[name=folder]", "2019")
    assert "folder=2019" in page.url and page.locator("a.tile").count() == 2
    with page.expect_navigation():  # another library: the folder filter is cleared, not carried over
        page.select_option("select[name=library]", str(work.pk))
    assert f"library={work.pk}" in page.url and "folder=2019" not in page.url
    assert page.locator("a.tile").count() == 1
    with page.expect_navigation():
        page.select_option("select[name=year]", "2019")
    assert f"library={work.pk}" in page.url and "year=2019" in page.url and page.locator("a.tile").count() == 1

    for url in ("/search/?q=rome", "/jobs/", "/review/", "/tags/", "/duplicates/", "/accounts/password_change/"):
        page.goto(live_server.url + url)
        page.wait_for_load_state("load")
    # Tags are indented by depth from the style sheet (no style attribute).
    page.goto(live_server.url + "/tags/")
    pad = dict(page.eval_on_selector_all("table.tags tr[data-tag]", """rows => rows.map(
        row => [row.dataset.tag, parseFloat(getComputedStyle(row.cells[0]).paddingLeft)])"""))
    assert pad["Places"] < pad["Places/Italy"] < pad["Places/Italy/Rome"], pad
    assert violations == []

    # The watch works: an inline handler added now is refused, and the refusal is seen.
    page.evaluate("""() => { const b = document.createElement("button"); b.setAttribute("onclick", "1");
                             document.body.append(b); b.click(); }""")
    page.wait_for_timeout(200)
    assert len(violations) == 1 and "inline event handler" in violations[0], violations
