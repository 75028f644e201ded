from django.db import migrations, models


def offsets_were_stated(apps, schema_editor):
    """Photos imported before this migration have an offset only when the file stated one
    (or the time is the file's mtime, read as UTC): metadata.ZoneFrom.OFFSET, spelt out here
    as migrations must not follow later changes to the code."""
    Photo = apps.get_model("gallery", "Photo")
    Photo.objects.exclude(taken_at_offset="").update(taken_at_zone_source="offset")


class Migration(migrations.Migration):

    dependencies = [
        ('gallery', '0003_engine_claims_and_scan_state'),
    ]

    operations = [
        migrations.AddField(
            model_name='photo',
            name='taken_at_zone',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name='photo',
            name='taken_at_zone_source',
            field=models.CharField(blank=True, max_length=10),
        ),
        migrations.RunPython(offsets_were_stated, migrations.RunPython.noop),
    ]
