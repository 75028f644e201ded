from django.db import migrations, models

# Embedding.taken_at and SearchDocument.taken_at follow their photo's capture time, whoever writes
# them (ORM, COPY, bulk updates): one function sets it from the photo on every insert into either
# table (and on any update that names the column), one trigger on the photo rewrites both tables'
# rows whenever its time changes. Then the rows already there are filled in (``backfill``).
TABLES = ("tagging_embedding", "tagging_searchdocument")

FORWARD = """
CREATE FUNCTION tagging_take_photo_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.taken_at := (SELECT taken_at FROM gallery_photo WHERE id = NEW.photo_id);
    RETURN NEW;
END $$;
""" + "".join(f"""
CREATE TRIGGER {table}_taken_at BEFORE INSERT OR UPDATE OF photo_id, taken_at ON {table}
    FOR EACH ROW EXECUTE FUNCTION tagging_take_photo_time();
""" for table in TABLES) + """
CREATE FUNCTION tagging_follow_photo_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
""" + "".join(f"""    UPDATE {table} SET taken_at = NEW.taken_at WHERE photo_id = NEW.id;
""" for table in TABLES) + """    RETURN NULL;
END $$;
CREATE TRIGGER tagging_follow_photo_time AFTER UPDATE OF taken_at ON gallery_photo
    FOR EACH ROW WHEN (OLD.taken_at IS DISTINCT FROM NEW.taken_at)
    EXECUTE FUNCTION tagging_follow_photo_time();
"""

BACKWARD = """
DROP TRIGGER tagging_follow_photo_time ON gallery_photo;
DROP FUNCTION tagging_follow_photo_time();
""" + "".join(f"DROP TRIGGER {table}_taken_at ON {table};\n" for table in TABLES) + """
DROP FUNCTION tagging_take_photo_time();
"""


def backfill(apps, schema_editor):
    """Fill in the rows already there. Every embedding row is rewritten, and each new row version would
    be inserted into the models' HNSW graphs one by one (100,000 embeddings: 41 s); dropping the graphs
    and building them again afterwards takes half that, and far less than that at a million. The
    search documents' GIN index takes its updates as they come (100,000: 1.6 s)."""
    from django.conf import settings

    with schema_editor.connection.cursor() as cur:
        cur.execute("SELECT indexname, indexdef FROM pg_indexes "
                    "WHERE tablename = 'tagging_embedding' AND indexdef LIKE '% USING hnsw %'")
        graphs = cur.fetchall()
        cur.execute("SELECT EXISTS (SELECT 1 FROM tagging_embedding)")
        if not cur.fetchone()[0]:
            graphs = []  # nothing to rewrite: the graphs stay
        for name, _ in graphs:
            cur.execute(f'DROP INDEX "{name}"')
        for table in TABLES:
            cur.execute(f"UPDATE {table} AS t SET taken_at = p.taken_at FROM gallery_photo AS p "
                        "WHERE p.id = t.photo_id AND p.taken_at IS NOT NULL")
        cur.execute(f"SET LOCAL maintenance_work_mem = '{int(settings.HNSW_BUILD_MEMORY_MB)}MB'")
        for _, definition in graphs:
            cur.execute(definition)


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
        migrations.AddField(
            model_name='searchdocument',
            name='taken_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
