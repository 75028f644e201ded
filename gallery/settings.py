"""Shoebox settings: one file, configured from environment variables.

Every setting a deployment may change is read here through the typed helpers
in ``gallery.env``; the defaults are safe for one person running Shoebox on
their own machine (embedded database, everything under ``SHOEBOX_DATA_DIR``).
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

from gallery.env import ImproperSetting, envbool, envfloat, envint, envpgsize, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("SHOEBOX_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def secret_key(data_dir: Path) -> str:
    """SECRET_KEY from the environment, else one generated once and kept in ``data_dir``.

    The file is created with mode 0600 (never readable by others, not even
    before a chmod) under a name of its own, then linked into place: two
    processes starting at once (web and worker) agree on one key, and no
    process ever reads a half-written file.
    """
    key = envstr("SHOEBOX_SECRET_KEY")
    if key:
        return key
    path = data_dir / "secret_key"
    if not path.exists():
        part = data_dir / f"secret_key.{secrets.token_hex(8)}.part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(50))
            try:
                os.link(part, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            except OSError:  # a file system without hard links
                os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
    return path.read_text().strip()


SECRET_KEY = secret_key(DATA_DIR)
DEBUG = envbool("SHOEBOX_DEBUG", False)
ALLOWED_HOSTS = [h for h in envstr("SHOEBOX_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in envstr("SHOEBOX_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "django_q",
    "axes",
    "csp",
    "gallery",
    "tagging",
    "people",
    "ocr",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "gallery.middleware.RejectNulBytesMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as its docs say: turns a lockout flagged during login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "gallery.urls"
WSGI_APPLICATION = "gallery.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "gallery.context_processors.model_banner",
            ],
        },
    },
]


def database_config(url: str) -> dict:
    """The DATABASES entry for ``DATABASE_URL`` (empty: the embedded server in the data dir).

    The URL is parsed by dj-database-url: libpq query parameters (``sslmode``,
    ``connect_timeout``, ``sslrootcert`` …) go into OPTIONS. A unix socket
    directory given as ``?host=/run/postgresql`` (libpq's form; percent-encoded
    in place of the host name works too) becomes HOST, and ``?port=`` PORT, so
    that ``manage.py dbshell`` finds them too.
    """
    if not url:
        return {
            "ENGINE": "gallery.db",
            "NAME": envstr("SHOEBOX_DB_NAME", "postgres"),
            "OPTIONS_EMBEDDED_PGDATA": str(DATA_DIR / "pg"),
            # Empty: an eighth of the machine's memory, 128 MB to 2 GB (gallery/embedded_postgres.py).
            "OPTIONS_EMBEDDED_SHARED_BUFFERS": envpgsize("SHOEBOX_PG_SHARED_BUFFERS"),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    scheme = url.partition(":")[0]
    if scheme not in ("postgres", "postgresql"):
        # The scheme only: the rest of the URL may hold a password.
        raise ImproperSetting(
            f"DATABASE_URL must be a postgres:// or postgresql:// URL (Shoebox needs PostgreSQL "
            f"with pgvector), not {scheme!r}"
        )
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:  # ParseError's text never repeats the URL (nor its password)
        raise ImproperSetting(f"DATABASE_URL cannot be read: {exc}") from None
    options = config.setdefault("OPTIONS", {})
    if "host" in options:
        config["HOST"] = str(options.pop("host"))
    if "port" in options:
        config["PORT"] = options.pop("port")
    config["PORT"] = str(config["PORT"] or "")
    if not config["NAME"] and "service" not in options:
        config["NAME"] = "postgres"
    return config


DATABASES = {"default": database_config(envstr("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out username + address before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Login attempts (django-axes) -----------------------------------------------
# After LOGIN_FAILURES failed logins from one address for one username, that pair is refused for
# LOGIN_COOLOFF_MINUTES (counted again from each attempt made while refused); other users and
# other addresses are not affected. A successful login clears the count.
# `manage.py axes_reset` lifts every lockout now.
AXES_FAILURE_LIMIT = envint("SHOEBOX_LOGIN_FAILURES", 5)
if AXES_FAILURE_LIMIT < 1:
    raise ImproperSetting("SHOEBOX_LOGIN_FAILURES must be at least 1")
LOGIN_COOLOFF_MINUTES = envint("SHOEBOX_LOGIN_COOLOFF_MINUTES", 15)
if LOGIN_COOLOFF_MINUTES < 1:
    raise ImproperSetting("SHOEBOX_LOGIN_COOLOFF_MINUTES must be at least 1")
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_LOCKOUT_CALLABLE = "gallery.accounts.lockout_response"
# Behind a reverse proxy every request comes from the proxy's address: with SHOEBOX_TRUSTED_PROXIES=N
# (the proxies in front of Shoebox, each appending to X-Forwarded-For) the client is the address the
# outermost trusted proxy saw, so one visitor's failures cannot lock out everyone else.
TRUSTED_PROXIES = envint("SHOEBOX_TRUSTED_PROXIES", 0)
if TRUSTED_PROXIES < 0:
    raise ValueError("SHOEBOX_TRUSTED_PROXIES must be 0 or more")
AXES_CLIENT_IP_CALLABLE = "gallery.accounts.client_ip"

# --- HTTPS, cookies and headers ------------------------------------------------------
# Off for a plain http://127.0.0.1 install; SHOEBOX_HTTPS=true when the site is reached over https.
HTTPS = envbool("SHOEBOX_HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = envint("SHOEBOX_HSTS_SECONDS", 365 * 24 * 3600) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS and envbool("SHOEBOX_HSTS_SUBDOMAINS", False)
# Behind a reverse proxy that terminates TLS (and sets X-Forwarded-Proto itself, overwriting any
# value a client sent): without this, SHOEBOX_HTTPS's redirect to https would loop.
if envbool("SHOEBOX_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy (django-csp 4): no inline script or style anywhere. Behaviour lives in
# static/js/, looks in static/css/; htmx's own indicator <style> is switched off in base.html.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("SHOEBOX_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Tests and DEBUG serve straight from static/ without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG

# --- Shoebox ---------------------------------------------------------------
# Shared storage when workers run on several machines.
THUMBNAIL_DIR = Path(envstr("SHOEBOX_THUMBNAIL_DIR", str(DATA_DIR / "thumbs")))
# Long edge in pixels of the two rendered sizes: the grid and the viewer.
THUMBNAIL_SIZES = {"grid": envint("SHOEBOX_THUMB_GRID", 400), "viewer": envint("SHOEBOX_THUMB_VIEWER", 1600)}
THUMBNAIL_QUALITY = envint("SHOEBOX_THUMB_QUALITY", 85)
# Refuse images larger than this many pixels (decompression bombs). 200 MP
# admits every real camera and panorama stitcher output we know of.
MAX_IMAGE_PIXELS = envint("SHOEBOX_MAX_IMAGE_PIXELS", 200_000_000)
# An image uploaded to search with is decoded in a web worker: a much smaller limit.
UPLOAD_MAX_PIXELS = envint("SHOEBOX_UPLOAD_MAX_PIXELS", 40_000_000)
# make run fetches missing default models first unless this is set (or the hub is unreachable).
OFFLINE = envbool("SHOEBOX_OFFLINE", False)
# People and text in photos (the faces and OCR stages); off = the stage does not run at all.
FACES = envbool("SHOEBOX_FACES", True)
OCR = envbool("SHOEBOX_OCR", True)
# Offline reverse geocoding of GPS positions to city / region / country.
GEOCODE = envbool("SHOEBOX_GEOCODE", True)
GALLERY_PAGE_SIZE = envint("SHOEBOX_PAGE_SIZE", 60)
# Threads reading files during a scan (hashing releases the GIL).
SCAN_THREADS = envint("SHOEBOX_SCAN_THREADS", 1)
# Photos per thumbnail task: big enough to amortise task overhead, small
# enough that a crash costs little.
THUMBNAIL_BATCH = envint("SHOEBOX_THUMBNAIL_BATCH", 50)

# --- AI pipeline (tagging app) ---------------------------------------------------
import platform as _platform  # noqa: E402


def _default_caption_backend() -> str:
    if _platform.system() == "Darwin" and _platform.machine() == "arm64":
        return "mlx"
    return "transformers"


# open_clip model: "ARCH:PRETRAINED_TAG" (hub), "ARCH:/path/weights.safetensors" or "local-dir:/path".
CLIP_MODEL = envstr("SHOEBOX_CLIP_MODEL", "ViT-B-32:laion2b_s34b_b79k")
CLIP_BATCH = envint("SHOEBOX_CLIP_BATCH", 16)
# HNSW search breadth: recall@10 vs exact scan measured in bench/search_bench.py.
HNSW_EF_SEARCH = envint("SHOEBOX_HNSW_EF_SEARCH", 100)
# Search texts whose CLIP vector each web process remembers (0: encode every search).
QUERY_CACHE = envint("SHOEBOX_QUERY_CACHE", 256)
# Memory for building an HNSW index (Postgres maintenance_work_mem, in MB). The graph of n photos'
# 512-d embeddings needs about n × 1.3 kB; when it does not fit, the build goes on far more slowly
# (bench/search_bench.py at 1,000,000 photos).
HNSW_BUILD_MEMORY_MB = envint("SHOEBOX_HNSW_BUILD_MEMORY_MB", 1024)
# A year with at least this many photos gets a search graph of its own (tagging.vectors), built by
# the worker's tick: a one-year search at 1,000,000 photos then walks that year's photos only.
# Smaller filters are ranked exactly (tagging.search.EXACT_BELOW). 0 builds none.
YEAR_INDEX_MIN = envint("SHOEBOX_YEAR_INDEX_MIN", 30_000)
# Cosine distance under which two photos' embeddings count as near-duplicates.
NEAR_DUPLICATE_DISTANCE = envfloat("SHOEBOX_NEAR_DUPLICATE_DISTANCE", 0.05)
CAPTION_BACKEND = envstr("SHOEBOX_CAPTION_BACKEND", _default_caption_backend())
if CAPTION_BACKEND not in ("mlx", "transformers", "openai"):
    raise ValueError(f"SHOEBOX_CAPTION_BACKEND={CAPTION_BACKEND!r}: use mlx, transformers or openai")
DEFAULT_CAPTION_MODELS = {
    "transformers": "HuggingFaceTB/SmolVLM-500M-Instruct",
    "mlx": "mlx-community/Qwen2.5-VL-3B-Instruct-4bit",
    "openai": "qwen2.5vl:3b",
}
# Hub id or local folder (transformers, mlx); for openai the server's model name.
CAPTION_MODEL = envstr("SHOEBOX_CAPTION_MODEL", "") or (
    envstr("SHOEBOX_OPENAI_MODEL", DEFAULT_CAPTION_MODELS["openai"]) if CAPTION_BACKEND == "openai"
    else DEFAULT_CAPTION_MODELS[CAPTION_BACKEND]
)
CAPTION_MAX_NEW_TOKENS = envint("SHOEBOX_CAPTION_MAX_TOKENS", 400)
CAPTION_BATCH = envint("SHOEBOX_CAPTION_BATCH", 4)
# Two passes (tagging.runners): a first pass for every photo (one sentence and tags, this many new tokens
# at most), then full descriptions as the machine allows: at most this many per hour, only while no
# cheaper work waits (0: only for photos someone opens; bench/caption_bench.py --two-pass).
CAPTION_FIRST_TOKENS = envint("SHOEBOX_CAPTION_FIRST_TOKENS", 64)
FULL_CAPTIONS_PER_HOUR = envint("SHOEBOX_FULL_CAPTIONS_PER_HOUR", 60)
CAPTION_IMAGE_SIZE = envint("SHOEBOX_CAPTION_IMAGE_SIZE", 512)  # long edge handed to the model
CAPTION_DTYPE = envstr("SHOEBOX_CAPTION_DTYPE", "auto")  # auto, bfloat16, float16, float32
CAPTION_IMAGE_SPLITTING = envbool("SHOEBOX_CAPTION_IMAGE_SPLITTING", False)
OPENAI_BASE_URL = envstr("SHOEBOX_OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
OPENAI_API_KEY = envstr("SHOEBOX_OPENAI_API_KEY", "")
OPENAI_MODEL = envstr("SHOEBOX_OPENAI_MODEL", DEFAULT_CAPTION_MODELS["openai"])
OPENAI_TIMEOUT = envfloat("SHOEBOX_OPENAI_TIMEOUT", 120.0)
OPENAI_RETRIES = envint("SHOEBOX_OPENAI_RETRIES", 2)
# Requests in flight at once (servers like vLLM and llama-server batch them internally).
OPENAI_CONCURRENCY = envint("SHOEBOX_OPENAI_CONCURRENCY", 1)

# Tags: auto-accept a suggestion whose CLIP score (σ above the tag's library mean) reaches this
# (empty: never; the owner decides). A tag learned from decisions suggests itself for at most
# TAG_LEARNED_SUGGESTIONS more photos, those its model gives at least this probability.
TAG_AUTO_ACCEPT = envfloat("SHOEBOX_TAG_AUTO_ACCEPT", None)
TAG_LEARNED_SUGGESTIONS = envint("SHOEBOX_TAG_LEARNED_SUGGESTIONS", 200)
TAG_LEARNED_MIN_PROBABILITY = envfloat("SHOEBOX_TAG_LEARNED_MIN_PROBABILITY", 0.9)
# Review shows a tag's suggestions nearest this CLIP score first (until the tag has a learned model).
TAG_REVIEW_BOUNDARY = envfloat("SHOEBOX_TAG_REVIEW_BOUNDARY", 2.0)

# django-q2: the ORM broker on the same Postgres. A task that runs longer than
# `timeout` is stopped (django-q2 raises TimeoutException, a SystemExit). The
# stage engine (gallery/engine.py) records that against the photos the task
# held and tries each of them again, alone, until it has had `max_attempts`
# attempts; then it is failed with the reason. A task whose worker was killed
# is taken back the same way (gallery/recovery.py). `retry` (longer than
# timeout) is when the broker hands out a task that was never acknowledged.
Q_CLUSTER = {
    "name": "shoebox",
    "orm": "default",
    "workers": envint("SHOEBOX_WORKERS", 1),
    "timeout": envint("SHOEBOX_TASK_TIMEOUT", 600),
    "retry": envint("SHOEBOX_TASK_RETRY", 720),
    "max_attempts": envint("SHOEBOX_TASK_MAX_ATTEMPTS", 3),
    "ack_failures": True,
    "save_limit": 1000,
    "catch_up": False,
    "poll": envfloat("SHOEBOX_QUEUE_POLL", 1.0),
    "label": "Tasks",
}
# Workers on several machines can share one Postgres (DATABASE_URL) and the ORM broker in it, or a
# Redis broker: SHOEBOX_REDIS_URL=redis://host:6379/0.
REDIS_URL = envstr("SHOEBOX_REDIS_URL", "")
if REDIS_URL:
    del Q_CLUSTER["orm"]
    Q_CLUSTER["redis"] = REDIS_URL
if Q_CLUSTER["retry"] <= Q_CLUSTER["timeout"]:
    raise ValueError("SHOEBOX_TASK_RETRY must be longer than SHOEBOX_TASK_TIMEOUT")
if Q_CLUSTER["max_attempts"] < 1:
    raise ValueError("SHOEBOX_TASK_MAX_ATTEMPTS must be at least 1")
# A caption task may need its own limit (a slow CPU, or a server that should answer sooner).
CAPTION_TIMEOUT = envint("SHOEBOX_CAPTION_TIMEOUT", Q_CLUSTER["timeout"])
if not 0 < CAPTION_TIMEOUT < Q_CLUSTER["retry"]:
    raise ValueError("SHOEBOX_CAPTION_TIMEOUT must be positive and shorter than SHOEBOX_TASK_RETRY")
# A library scan in the worker reads files for this long, then queues its next slice.
SCAN_SLICE_SECONDS = envint("SHOEBOX_SCAN_SLICE", max(5, Q_CLUSTER["timeout"] // 2))

# Torch and BLAS in worker processes: never more threads than cores, and no
# spin-waiting (oversubscription cost 30x on these machines: DESIGN.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
WORKER_THREADS = envint("SHOEBOX_WORKER_THREADS", max(1, (os.cpu_count() or 1) // max(1, Q_CLUSTER["workers"])))
os.environ.setdefault("OMP_NUM_THREADS", str(WORKER_THREADS))
# Torch threads in each web process (the search box's text encoder): requests already run side by side,
# and a second thread saved 7 ms of a 127 ms ViT-B-32 encode for 51 ms more CPU (bench/load_bench.py).
WEB_TORCH_THREADS = envint("SHOEBOX_WEB_TORCH_THREADS", 1)
# Text in photos (the OCR stage, SHOEBOX_OCR): onnxruntime threads per worker process, the long
# edge in px the text detector reads the viewer thumbnail at, and the lowest recognition score kept
# (bench/ocr_bench.py measured both).
OCR_THREADS = envint("SHOEBOX_OCR_THREADS", WORKER_THREADS)
OCR_DET_SIZE = envint("SHOEBOX_OCR_DET_SIZE", 960)
# A first, cheap detector pass at this size (0: none): a photo where it finds no text is done.
OCR_QUICK_SIZE = envint("SHOEBOX_OCR_QUICK_SIZE", 640)
OCR_MIN_SCORE = envfloat("SHOEBOX_OCR_MIN_SCORE", 0.7)
OCR_BATCH = envint("SHOEBOX_OCR_BATCH", 20)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("SHOEBOX_LOG_LEVEL", "WARNING")},
    "loggers": {
        "gallery": {"level": envstr("SHOEBOX_LOG_LEVEL", "INFO"), "propagate": True},
        # exifread reports every non-EXIF file it is shown; the importer records reasons itself.
        "exifread": {"level": "CRITICAL"},
    },
}
