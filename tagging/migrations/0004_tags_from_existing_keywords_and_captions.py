"""Photos imported before tags existed: their file keywords become accepted tags, their caption tags suggestions.

(A snapshot of tagging.tags' rules for the models as they are at this migration.)
"""

from django.db import migrations


def backfill(apps, schema_editor):
    from tagging import vocabulary

    Photo = apps.get_model("gallery", "Photo")
    Caption = apps.get_model("tagging", "Caption")
    Tag = apps.get_model("tagging", "Tag")
    PhotoTag = apps.get_model("tagging", "PhotoTag")
    tags: dict[str, object] = {}

    def tag_for(parts, status):
        parent = None
        for depth in range(1, len(parts) + 1):
            path = "/".join(parts[:depth])
            key = path.casefold()
            if key not in tags:
                tags[key] = Tag.objects.filter(path__iexact=path).first() or Tag.objects.create(
                    name=parts[depth - 1][:200], parent=parent, path=path, status=status)
            parent = tags[key]
        return parent

    for photo in Photo.objects.exclude(keywords=[]).only("pk", "keywords").iterator():
        for keyword in photo.keywords:
            parts = [p.replace("/", " ")[:200] for p in vocabulary.split_hierarchy(keyword)]
            if parts:
                PhotoTag.objects.get_or_create(photo_id=photo.pk, tag=tag_for(parts, "active"),
                                               defaults={"source": "file", "state": "accepted", "term": keyword[:200]})
    for caption in Caption.objects.order_by("photo_id", "-created_at").distinct("photo_id").iterator():
        for term in caption.tags or []:
            word = vocabulary.normalize(term)
            if not word:
                continue
            tag = tags.get(word) or Tag.objects.filter(name__iexact=word).first() or tag_for(
                [vocabulary.singular(word).replace("/", " ")], "proposed")
            PhotoTag.objects.get_or_create(photo_id=caption.photo_id, tag=tag, defaults={
                "source": "caption", "state": "suggested", "term": term[:200],
                "model": f"{caption.backend}:{caption.model}", "prompt_version": caption.prompt_version})


class Migration(migrations.Migration):
    dependencies = [
        ("tagging", "0003_tags_and_review"),
        ("gallery", "0003_engine_claims_and_scan_state"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
