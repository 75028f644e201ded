"""The owner's admin account."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model


def ensure_admin(username: str = "admin") -> str | None:
    """Create a superuser if there is none. Returns the new password, or None.

    The password is ``SHOEBOX_ADMIN_PASSWORD`` when set, else generated (and
    returned so the caller can show it once).
    """
    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return None
    password = os.environ.get("SHOEBOX_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    User.objects.create_superuser(username=username, email="", password=password)
    return password
