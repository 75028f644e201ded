"""Adding libraries: validating a folder before Shoebox starts scanning it."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from gallery.models import Library


class LibraryError(ValueError):
    pass


def add_library(path: str, name: str | None = None) -> tuple[Library, bool]:
    """Return the library for ``path`` (creating it if new) and whether it was created.

    Refuses folders that do not exist, are not readable, lie inside Shoebox's
    own data folder, or overlap another library (a photo would be imported
    twice under two roots).
    """
    if not path or not path.strip():
        raise LibraryError("Give the path of a folder.")
    root = Path(os.path.abspath(os.path.expanduser(path.strip())))
    if not root.exists():
        raise LibraryError(f"{root} does not exist.")
    if not root.is_dir():
        raise LibraryError(f"{root} is not a folder.")
    if not os.access(root, os.R_OK | os.X_OK):
        raise LibraryError(f"{root} cannot be read by the user Shoebox runs as.")
    data = Path(settings.DATA_DIR)
    if root == data or data in root.parents:
        raise LibraryError(f"{root} is inside Shoebox's own data folder ({data}).")
    existing = Library.objects.filter(root=str(root)).first()
    if existing is not None:
        return existing, False
    for other in Library.objects.all():
        other_root = Path(other.root)
        if other_root in root.parents or root in other_root.parents:
            raise LibraryError(f"{root} overlaps the library “{other.name}” ({other.root}).")
    name = (name or "").strip() or root.name or str(root)
    if Library.objects.filter(name=name).exists():
        raise LibraryError(f"A library named “{name}” already exists; choose another name.")
    return Library.objects.create(name=name, root=str(root)), True
