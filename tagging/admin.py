"""The tag vocabulary in the Django admin: rename (the change form) and merge (an action) go through tagging.tags."""

from django.contrib import admin, messages
from django.db.models import Count, Q

from tagging import tags
from tagging.models import PhotoTag, Tag, TagAlias


class AliasInline(admin.TabularInline):
    model = TagAlias
    extra = 1


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("path", "status", "accepted")
    list_filter = ("status",)
    search_fields = ("path", "aliases__alias")
    readonly_fields = ("path", "parent", "created_at")
    fields = ("name", "path", "parent", "status", "created_at")
    inlines = [AliasInline]
    actions = ["merge_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            n_accepted=Count("photo_tags", filter=Q(photo_tags__state=PhotoTag.State.ACCEPTED)))

    @admin.display(ordering="n_accepted", description="Accepted photos")
    def accepted(self, obj):
        return obj.n_accepted

    def save_model(self, request, obj, form, change):
        """A new name goes through tags.rename, so the paths of the tag and its children follow."""
        new_name = obj.name
        if change and "name" in form.changed_data:
            obj.name = form.initial["name"]
        super().save_model(request, obj, form, change)
        if obj.name != new_name:
            try:
                tags.rename(obj, new_name)
            except tags.TagError as exc:
                self.message_user(request, str(exc), messages.ERROR)

    @admin.action(description="Merge the selected tags into the one with the most accepted photos")
    def merge_selected(self, request, queryset):
        chosen = sorted(queryset, key=lambda t: (-t.n_accepted, t.path))
        if len(chosen) < 2:
            self.message_user(request, "Select two tags or more to merge.", messages.WARNING)
            return
        target, moved = chosen[0], 0
        for source in chosen[1:]:
            try:
                moved += tags.merge(Tag.objects.get(pk=source.pk), Tag.objects.get(pk=target.pk), by=request.user)
            except (tags.TagError, Tag.DoesNotExist) as exc:
                self.message_user(request, f"{source.path}: {exc}", messages.ERROR)
        self.message_user(request, f"Merged into {target.path}; {moved} photo links moved.")
