from django.db import migrations, models

# Embedding.taken_at follows its photo's capture time, whoever writes it (ORM, COPY, bulk updates):
# set from the photo on every insert (and on any update that names the column), and rewritten on the
# photo's embeddings whenever the photo's time changes. Then the rows already there are filled in
# (``backfill``).
FORWARD = """
CREATE FUNCTION tagging_embedding_take_photo_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.taken_at := (SELECT taken_at FROM gallery_photo WHERE id = NEW.photo_id);
    RETURN NEW;
END $$;
CREATE TRIGGER tagging_embedding_taken_at BEFORE INSERT OR UPDATE OF photo_id, taken_at ON tagging_embedding
    FOR EACH ROW EXECUTE FUNCTION tagging_embedding_take_photo_time();
CREATE FUNCTION tagging_embedding_follow_photo_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tagging_embedding SET taken_at = NEW.taken_at WHERE photo_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER tagging_embedding_follow_photo_time AFTER UPDATE OF taken_at ON gallery_photo
    FOR EACH ROW WHEN (OLD.taken_at IS DISTINCT FROM NEW.taken_at)
    EXECUTE FUNCTION tagging_embedding_follow_photo_time();
"""

BACKFILL = """
UPDATE tagging_embedding AS e SET taken_at = p.taken_at FROM gallery_photo AS p
    WHERE p.id = e.photo_id AND p.taken_at IS NOT NULL
"""


def backfill(apps, schema_editor):
    """Fill in the rows already there. Every row is rewritten, and each new row version would be
    inserted into the models' HNSW graphs one by one (100,000 embeddings: 41 s); dropping the graphs
    and building them again afterwards takes half that, and far less than that at a million."""
    from django.conf import settings

    with schema_editor.connection.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM tagging_embedding)")
        if not cur.fetchone()[0]:
            return
        cur.execute("SELECT indexname, indexdef FROM pg_indexes "
                    "WHERE tablename = 'tagging_embedding' AND indexdef LIKE '% USING hnsw %'")
        graphs = cur.fetchall()
        for name, _ in graphs:
            cur.execute(f'DROP INDEX "{name}"')
        cur.execute(BACKFILL)
        cur.execute(f"SET LOCAL maintenance_work_mem = '{int(settings.HNSW_BUILD_MEMORY_MB)}MB'")
        for _, definition in graphs:
            cur.execute(definition)

BACKWARD = """
DROP TRIGGER tagging_embedding_follow_photo_time ON gallery_photo;
DROP FUNCTION tagging_embedding_follow_photo_time();
DROP TRIGGER tagging_embedding_taken_at ON tagging_embedding;
DROP FUNCTION tagging_embedding_take_photo_time();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('gallery', '0005_sourcefile_folder_byte_order'),
        ('tagging', '0007_tag_counts_kept_by_triggers'),
    ]

    operations = [
        migrations.AddField(
            model_name='embedding',
            name='taken_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
