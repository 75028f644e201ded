from django.contrib import admin

from people.models import Face, Person


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ("__str__", "face_count", "hidden", "updated_at")
    list_filter = ("hidden",)
    search_fields = ("name",)
    raw_id_fields = ("cover",)
    readonly_fields = ("face_count", "created_at", "updated_at")


@admin.register(Face)
class FaceAdmin(admin.ModelAdmin):
    list_display = ("pk", "photo", "person", "source", "detector", "size", "locked")
    list_filter = ("source", "locked", "detector")
    search_fields = ("person__name", "region_name")
    raw_id_fields = ("photo", "person")
    exclude = ("embedding",)  # 128 numbers: not for editing by hand
    readonly_fields = ("created_at",)
