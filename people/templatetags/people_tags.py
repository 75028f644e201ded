from django import template

from people.models import Face

register = template.Library()


@register.simple_tag
def photo_faces(photo, limit: int = 100):
    """The named faces of ``photo`` with their persons, left to right (the photo page's boxes)."""
    return list(Face.objects.filter(photo=photo).exclude(person=None).exclude(person__name="")
                .select_related("person").order_by("x", "pk")[:limit])
