"""Telling the owner clearly when a model's weights are not on this machine.

Shoebox never downloads weights behind the owner's back and never falls back
to a random model. A loader that cannot find its weights raises
``ModelUnavailable``; the stage waits in the "unavailable" state, the UI shows
``message`` as a banner, and everything else keeps working.
"""

from __future__ import annotations

from gallery.stages import StageUnavailable


class ModelUnavailable(StageUnavailable):
    """The weights (or server) a stage needs are not available here."""

    def __init__(self, model: str, reason: str, fix: str = ""):
        self.model = model
        self.reason = reason
        self.fix = fix or "Run `python manage.py models pull` on a machine with internet access, or point the setting at a local copy."
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"Model {self.model} is not available: {self.reason}. {self.fix}"
