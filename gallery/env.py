"""Typed readers for settings taken from environment variables.

Each helper fails loudly on a value it cannot parse, so a typo in a
deployment shows up at start-up instead of as odd behaviour later
(the healthchecks ``envbool``/``envint`` pattern).
"""

import os
import re


class ImproperSetting(ValueError):
    pass


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperSetting(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no)")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperSetting(f"{name}={raw!r} is not an integer") from None


def envfloat(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperSetting(f"{name}={raw!r} is not a number") from None


def envpgsize(name: str) -> str:
    """A Postgres memory size (``512MB``, ``2GB``), or "" when unset."""
    raw = os.environ.get(name, "").strip()
    if raw and not re.fullmatch(r"[1-9][0-9]*(kB|MB|GB|TB)", raw):
        raise ImproperSetting(f"{name}={raw!r} is not a Postgres size such as 512MB or 2GB")
    return raw
