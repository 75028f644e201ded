"""Text read in photos (OCR)."""

from __future__ import annotations

from django.db import models


class PhotoText(models.Model):
    """What the OCR stage read in one photo: the lines, their boxes and confidences.

    ``lines`` is ``[{"text": str, "box": [[x, y] × 4 fractions of the displayed image], "score": float}, …]``
    in reading order; ``text`` is the lines joined, for the search document. A photo the
    stage read and found no text in has a row with no lines (so it is not read again).
    """

    photo = models.OneToOneField("gallery.Photo", on_delete=models.CASCADE, related_name="text")
    model = models.CharField(max_length=80)  # which OCR models read it
    lines = models.JSONField(default=list, blank=True)
    text = models.TextField(blank=True)
    seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["photo"], condition=~models.Q(text=""), name="phototext_has_text")]
