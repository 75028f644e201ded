"""People in photos: faces (detected, or regions other tools wrote into the files) and the persons they belong to.

Boxes are fractions (0–1) of the *displayed* image: upright, orientation
applied, so they work on every thumbnail size and on the original alike.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower
from pgvector.django import HnswIndex, VectorField

FACE_DIM = 128  # dlib's ResNet face descriptor


class Person(models.Model):
    """A named person, or an unnamed cluster of faces waiting for a name (``name == ""``)."""

    name = models.CharField(max_length=200, blank=True)
    hidden = models.BooleanField(default=False)  # the owner does not want them on the People page
    cover = models.ForeignKey("Face", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    face_count = models.PositiveIntegerField(default=0)  # kept by clustering, naming and moves
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("name"), condition=~models.Q(name=""), name="person_unique_name"),
        ]
        indexes = [models.Index(fields=["hidden", "-face_count"], name="person_listing")]

    def __str__(self) -> str:
        return self.name or f"Unnamed #{self.pk}"

    @property
    def named(self) -> bool:
        return bool(self.name)

    @classmethod
    def refresh(cls, ids) -> None:
        """Recount the faces of the persons ``ids`` and choose each one's cover (the largest,
        sharpest face); persons left without faces, no name and no owner's decision are deleted."""
        ids = {i for i in ids if i is not None}
        if not ids:
            return
        for person in cls.objects.filter(pk__in=ids):
            faces = Face.objects.filter(person=person)
            person.face_count = faces.count()
            if person.face_count == 0 and not person.name and not person.hidden:
                person.delete()
                continue
            if person.cover_id is None or not faces.filter(pk=person.cover_id).exists():
                person.cover = faces.order_by(
                    models.F("size").desc(), models.F("sharpness").desc(nulls_last=True), "pk").first()
            person.save(update_fields=["face_count", "cover", "updated_at"])


class Face(models.Model):
    """One face in one photo."""

    class Source(models.TextChoices):
        DETECTED = "detected", "detected"
        FILE = "file", "region in the file"  # MWG or Microsoft Photo region another tool wrote

    photo = models.ForeignKey("gallery.Photo", on_delete=models.CASCADE, related_name="faces")
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="faces")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.DETECTED)
    # Box in the displayed (upright) image, as fractions of its width and height.
    x = models.FloatField()
    y = models.FloatField()
    w = models.FloatField()
    h = models.FloatField()
    landmarks = models.JSONField(default=list, blank=True)  # [[x, y], …] fractions, dlib's 5 points
    embedding = VectorField(dimensions=FACE_DIM, null=True, blank=True)
    detector = models.CharField(max_length=40, blank=True)  # "hog", "cnn", or the region format ("mwg", "mp")
    size = models.PositiveIntegerField(default=0)  # the box's shorter edge in pixels of the image it was found on
    sharpness = models.FloatField(null=True, blank=True)  # variance of the Laplacian of the face crop
    region_name = models.CharField(max_length=200, blank=True)  # the name a file region gave
    # The owner put this face where it is (named, moved): clustering never moves it again.
    locked = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["person", "photo"], name="face_person_photo"),
            HnswIndex(name="face_embedding_hnsw", fields=["embedding"], m=16, ef_construction=64,
                      opclasses=["vector_l2_ops"]),
        ]

    def __str__(self) -> str:
        return f"face {self.pk} in photo {self.photo_id}"

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)
