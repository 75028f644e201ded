from django import template

from people.models import Face

register = template.Library()


@register.simple_tag
def photo_faces(photo, limit: int = 100):
    """The faces of named, not hidden, people in ``photo``, left to right (the photo page's boxes; export
    writes the same faces as regions)."""
    return list(Face.objects.filter(photo=photo, person__hidden=False).exclude(person__name="")
                .select_related("person").order_by("x", "pk")[:limit])
