"""The owner's admin account, and the page a locked-out login gets."""

from __future__ import annotations

import math
import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.shortcuts import render


def ensure_admin(username: str = "admin") -> str | None:
    """Create a superuser if there is none. Returns the new password, or None.

    The password is ``SHOEBOX_ADMIN_PASSWORD`` when set, else generated (and
    returned so the caller can show it once). A chosen password must pass
    ``AUTH_PASSWORD_VALIDATORS``: a weak one raises Django's ``ValidationError``
    with every validator's message, and no account is created.
    """
    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return None
    chosen = os.environ.get("SHOEBOX_ADMIN_PASSWORD")
    if chosen:
        validate_password(chosen, User(username=username))
    password = chosen or secrets.token_urlsafe(16)  # 22 characters from 64: strong by construction
    User.objects.create_superuser(username=username, email="", password=password)
    return password


def lockout_response(request, original_response, credentials):
    """django-axes' AXES_LOCKOUT_CALLABLE: a page saying how long to wait, with axes' status (429)."""
    from django.conf import settings

    from axes.helpers import get_cool_off

    cool_off = get_cool_off(request)
    minutes = math.ceil(cool_off.total_seconds() / 60) if cool_off else None
    return render(request, "registration/lockout.html", {"minutes": minutes},
                  status=settings.AXES_HTTP_RESPONSE_CODE)


def staff_required(view):
    """Signed-in staff only: others get 403, anonymous visitors are sent to log in first.

    Marks the view ``staff_only`` so a test can find every such URL.
    """
    import functools

    from django.contrib.auth.decorators import login_required
    from django.core.exceptions import PermissionDenied

    @login_required
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("staff only")
        return view(request, *args, **kwargs)

    wrapped.staff_only = True
    return wrapped


def client_ip(request) -> str | None:
    """The visitor's address, for login rate limits.

    ``REMOTE_ADDR``, unless ``SHOEBOX_TRUSTED_PROXIES`` says N proxies stand in front: then the
    N-th address from the right of ``X-Forwarded-For`` (each proxy appends the address it saw, so
    entries further left are whatever the client claimed and are not trusted).
    """
    from django.conf import settings

    trusted = settings.TRUSTED_PROXIES
    remote = request.META.get("REMOTE_ADDR")
    if not trusted:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < trusted:
        return remote
    return forwarded[-trusted][:64]
