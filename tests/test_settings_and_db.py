"""Settings and the database: DATABASE_URL, dbshell on the embedded server, the secret key file,
gunicorn's command line, the account pages and the model banner."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.urls import NoReverseMatch, reverse

from gallery import embedded_postgres, stages, supervisor
from gallery.context_processors import headline
from gallery.env import ImproperSetting
from gallery.models import PhotoStage
from gallery.settings import database_config, secret_key
from tagging.availability import ModelUnavailable
from tagging.runners import CAPTION, EMBEDDING
from tests.factories import make_photo

ROOT = Path(__file__).resolve().parent.parent


# --- DATABASE_URL -----------------------------------------------------------------------------

def test_a_socket_directory_in_the_query_string_becomes_the_host():
    db = database_config("postgres://u:p@/db?host=/run/pg")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"], db["PASSWORD"]) == ("/run/pg", "", "db", "u", "p")
    assert "host" not in db["OPTIONS"]


def test_a_percent_encoded_socket_directory_works_too():
    assert database_config("postgres://u@%2FRun%2FPg:5433/db")["HOST"] == "/Run/Pg"


def test_sslmode_goes_into_options_and_the_port_is_kept():
    db = database_config("postgresql://u:p@db.example.com:5433/db?sslmode=require&connect_timeout=10")
    assert (db["HOST"], db["PORT"], db["NAME"]) == ("db.example.com", "5433", "db")
    assert db["OPTIONS"] == {"sslmode": "require", "connect_timeout": 10}
    assert db["CONN_MAX_AGE"] == 60 and db["CONN_HEALTH_CHECKS"] is True


def test_a_url_without_a_database_name_uses_postgres():
    assert database_config("postgres://u:p@db.example.com")["NAME"] == "postgres"


@pytest.mark.parametrize("url", ["mysql://u:secret@db.example.com/db", "sqlite:///shoebox.db"])
def test_a_url_that_is_not_postgres_is_refused_clearly(url):
    with pytest.raises(ImproperSetting, match=r"must be a postgres:// or postgresql:// URL") as error:
        database_config(url)
    assert "secret" not in str(error.value)


def test_no_url_means_the_embedded_server():
    db = database_config("")
    assert db["ENGINE"] == "gallery.db" and db["OPTIONS_EMBEDDED_PGDATA"].endswith("pg")


@pytest.mark.django_db
def test_the_socket_directory_of_a_url_reaches_a_real_server():
    from django.db import connection
    from django.db.utils import ConnectionHandler

    connection.ensure_connection()  # the embedded test server: its socket directory and port
    test_db = connection.settings_dict
    url = f"postgres://postgres@/{test_db['NAME']}?host={test_db['HOST']}&port={test_db['PORT']}"
    other = ConnectionHandler({"default": database_config(url)})["default"]
    try:
        with other.cursor() as cur:
            cur.execute("select 42")
            assert cur.fetchone() == (42,)
    finally:
        other.close()


# --- dbshell on the embedded server ---------------------------------------------------------------

@pytest.fixture
def fresh_data_dir():
    # Not under /root, and in a folder of its own (pgserver chmods parents as root).
    base = Path(tempfile.mkdtemp(prefix="shoebox-dbshell-", dir="/tmp"))
    yield base / "data"
    embedded_postgres.stop(base / "data" / "pg")
    shutil.rmtree(base, ignore_errors=True)


def test_dbshell_reaches_the_embedded_server_with_its_own_psql(fresh_data_dir, tmp_path):
    # A psql on PATH that is not the server's: dbshell must run the one shipped with the server,
    # and give it the socket directory and port of the running embedded server.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "psql").write_text("#!/bin/sh\necho 'not the bundled psql' >&2\nexit 3\n")
    (fake / "psql").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGHOST", "PGPORT", "SHOEBOX_DB_NAME")}
    env.update(SHOEBOX_DATA_DIR=str(fresh_data_dir), PATH=f"{fake}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "dbshell", "--", "-At", "-c", "select 40 + 2"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


# --- the secret key file ------------------------------------------------------------------------

def test_the_secret_key_file_is_private_from_the_moment_it_exists(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOEBOX_SECRET_KEY", raising=False)

    def no_chmod(*args, **kwargs):
        raise AssertionError("the key file must be created 0600, not changed afterwards")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(Path, "chmod", no_chmod)
    old_umask = os.umask(0)  # nothing masks a wrong creation mode
    try:
        key = secret_key(tmp_path)
    finally:
        os.umask(old_umask)
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 50 and path.read_text() == key
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"], "no .part file left behind"


def test_an_existing_secret_key_is_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOEBOX_SECRET_KEY", raising=False)
    first = secret_key(tmp_path)
    assert secret_key(tmp_path) == first
    monkeypatch.setenv("SHOEBOX_SECRET_KEY", "from-the-environment")
    assert secret_key(tmp_path) == "from-the-environment"


# --- gunicorn -------------------------------------------------------------------------------

def test_gunicorn_opens_no_control_socket():
    from gunicorn.config import Config

    web = supervisor.commands("127.0.0.1:8000", 2)["web"]
    assert "--no-control-socket" in web
    args = Config().parser().parse_args(web[web.index("gunicorn") + 1:])
    assert args.control_socket_disable is True


# --- account pages -------------------------------------------------------------------------

@pytest.mark.django_db
def test_password_reset_pages_are_not_mounted(client):
    for url in ("/accounts/password_reset/", "/accounts/password_reset/done/", "/accounts/reset/done/"):
        assert client.get(url).status_code == 404, url
    with pytest.raises(NoReverseMatch):
        reverse("password_reset")


@pytest.mark.django_db
def test_login_and_password_change_still_work(client):
    User.objects.create_user("ann", password="old-password-1")
    response = client.post("/accounts/login/", {"username": "ann", "password": "old-password-1"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/accounts/password_change/").status_code == 200
    response = client.post("/accounts/password_change/", {
        "old_password": "old-password-1", "new_password1": "new-password-2", "new_password2": "new-password-2",
    })
    assert response.status_code == 302 and response["Location"] == "/accounts/password_change/done/"
    assert User.objects.get(username="ann").check_password("new-password-2")


@pytest.mark.django_db
def test_password_change_is_for_signed_in_users_only(client):
    response = client.get("/accounts/password_change/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# --- the model banner ------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_model_banner_says_what_is_wrong_in_its_first_line(client, library):
    model = "ViT-B-32:laion2b_s34b_b79k"
    message = ModelUnavailable(
        model, "its weights (timm/vit_base_patch32_clip_224.laion2b_e16/open_clip_model.safetensors) "
        "are not in the Hugging Face cache (/srv/hf)",
    ).message
    photo = make_photo(library, "a.jpg", taken=datetime(2024, 5, 1, tzinfo=timezone.utc))
    PhotoStage.objects.create(photo=photo, stage=EMBEDDING, state=PhotoStage.State.UNAVAILABLE,
                              model=model, error=message)
    client.force_login(User.objects.create_user("ann", password="pw-123456789"))
    page = client.get("/").content.decode()
    assert (f"<summary>The model {model} is not available here — CLIP embeddings wait; "
            "everything else keeps working.</summary>") in page
    assert "manage.py models pull" in page, "the full message with its fix is in the details"


def test_a_banner_for_a_stage_without_a_model_message_still_says_what_waits():
    assert headline(stages.get(CAPTION), "the caption server is down") == (
        f"{stages.get(CAPTION).title} wait for something that is not available here; everything else keeps working."
    )
    message = ModelUnavailable("qwen2.5vl:3b", "no OpenAI-compatible server answers at http://gpu:11434/v1").message
    assert headline(stages.get(CAPTION), message) == (
        f"The model qwen2.5vl:3b is not available here — {stages.get(CAPTION).title.lower()} wait; "
        "everything else keeps working."
    )
