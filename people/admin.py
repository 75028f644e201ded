"""Person and Face in the Django admin. Names change on the person's page (``people.naming``: a name
someone has merges, search documents follow), so the admin shows a person's name read-only once they
exist; a face given to someone else here is counted and searched like any other move."""

from django.contrib import admin

from people import naming
from people.models import Face, Person


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ("__str__", "face_count", "hidden", "updated_at")
    list_filter = ("hidden",)
    search_fields = ("name",)
    raw_id_fields = ("cover",)
    readonly_fields = ("face_count", "created_at", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "name") if obj is not None else self.readonly_fields


@admin.register(Face)
class FaceAdmin(admin.ModelAdmin):
    list_display = ("pk", "photo", "person", "source", "detector", "size", "locked")
    list_filter = ("source", "locked", "detector")
    search_fields = ("person__name", "region_name")
    raw_id_fields = ("photo", "person")
    exclude = ("embedding",)  # 128 numbers: not for editing by hand
    readonly_fields = ("created_at",)

    def save_model(self, request, obj, form, change):
        before = Face.objects.filter(pk=obj.pk).values_list("person_id", flat=True).first() if change else None
        super().save_model(request, obj, form, change)
        naming.changed([before, obj.person_id], [obj.photo_id])

    def delete_model(self, request, obj):
        person_id, photo_id = obj.person_id, obj.photo_id
        super().delete_model(request, obj)
        naming.changed([person_id], [photo_id])
