from django.contrib import admin

from gallery.models import Library, Photo, PhotoStage, SourceFile


@admin.register(Library)
class LibraryAdmin(admin.ModelAdmin):
    list_display = ("name", "root", "scan_state", "scan_finished_at")


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = ("id", "taken_at", "camera_model", "place_city", "status")
    list_filter = ("status", "format")
    search_fields = ("content_hash", "camera_model", "place_city")


@admin.register(SourceFile)
class SourceFileAdmin(admin.ModelAdmin):
    list_display = ("relpath", "library", "outcome", "missing", "reason")
    list_filter = ("outcome", "missing", "library")
    search_fields = ("relpath",)
    raw_id_fields = ("photo",)


@admin.register(PhotoStage)
class PhotoStageAdmin(admin.ModelAdmin):
    list_display = ("photo_id", "stage", "state", "attempts", "error")
    list_filter = ("stage", "state")
    raw_id_fields = ("photo",)
