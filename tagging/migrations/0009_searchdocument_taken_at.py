from django.db import migrations, models

# SearchDocument.taken_at follows its photo's capture time as Embedding.taken_at does (0008).
FORWARD = """
CREATE FUNCTION tagging_searchdocument_take_photo_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.taken_at := (SELECT taken_at FROM gallery_photo WHERE id = NEW.photo_id);
    RETURN NEW;
END $$;
CREATE TRIGGER tagging_searchdocument_taken_at BEFORE INSERT OR UPDATE OF photo_id, taken_at
    ON tagging_searchdocument FOR EACH ROW EXECUTE FUNCTION tagging_searchdocument_take_photo_time();
CREATE FUNCTION tagging_searchdocument_follow_photo_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tagging_searchdocument SET taken_at = NEW.taken_at WHERE photo_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER tagging_searchdocument_follow_photo_time AFTER UPDATE OF taken_at ON gallery_photo
    FOR EACH ROW WHEN (OLD.taken_at IS DISTINCT FROM NEW.taken_at)
    EXECUTE FUNCTION tagging_searchdocument_follow_photo_time();
UPDATE tagging_searchdocument AS d SET taken_at = p.taken_at FROM gallery_photo AS p WHERE p.id = d.photo_id;
"""

BACKWARD = """
DROP TRIGGER tagging_searchdocument_follow_photo_time ON gallery_photo;
DROP FUNCTION tagging_searchdocument_follow_photo_time();
DROP TRIGGER tagging_searchdocument_taken_at ON tagging_searchdocument;
DROP FUNCTION tagging_searchdocument_take_photo_time();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('tagging', '0008_embedding_taken_at'),
    ]

    operations = [
        migrations.AddField(
            model_name='searchdocument',
            name='taken_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
