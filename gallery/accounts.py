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
