"""Full-text search documents: one weighted tsvector per photo.

``refresh(photo_ids)`` rebuilds them in one SQL statement from the photo's
own metadata, its newest caption and its file paths. The scanner's callers
and the caption stage call it, so the keyword side of search follows
imports and captions without a separate indexing job.

Weights: A — keywords from the file and accepted tags (with their parents'
names), and the names of the people in the photo (``simple``: names are not
stemmed; ``people.naming`` refreshes the documents of the photos it changes);
B — title and the one-sentence caption (the owner's when there is one);
C — descriptions, the structured caption fields and suggested tags (weaker
evidence until the owner accepts them); D — place names, camera, file and folder
names (``simple`` configuration: names are not stemmed).
Text read in the photo (the OCR stage) counts at C, in both configurations: a sign's
words are found as typed, stemmed or not; the OCR stage refreshes its photos' documents.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

_REFRESH_SQL = r"""
INSERT INTO tagging_searchdocument (photo_id, document, updated_at)
SELECT p.id,
    setweight(to_tsvector('english', array_to_string(p.keywords, ' ') || ' ' || coalesce(t.accepted, '')), 'A') ||
    setweight(to_tsvector('simple', coalesce(n.names, '')), 'A') ||
    setweight(to_tsvector('english', p.title || ' ' || coalesce(o.caption, c.caption, '')), 'B') ||
    setweight(to_tsvector('english', left(p.description, 20000) || ' ' || left(coalesce(c.description, ''), 20000)
                                     || ' ' || left(coalesce(c.fields, ''), 20000) || ' ' || coalesce(t.suggested, '')
                                     || ' ' || left(coalesce(ocr.text, ''), 20000)), 'C') ||
    setweight(to_tsvector('simple', left(coalesce(ocr.text, ''), 20000)), 'C') ||
    setweight(to_tsvector('simple', concat_ws(' ', p.place_city, p.place_region, p.place_country,
                                              p.camera_make, p.camera_model, p.lens, f.paths)), 'D') ||
    setweight(to_tsvector('english', concat_ws(' ', p.place_city, p.place_region, p.place_country, f.paths)), 'D'),
    now()
FROM gallery_photo p
LEFT JOIN LATERAL (
    SELECT c.caption, c.description, array_to_string(c.tags, ' ') AS tags,
           concat_ws(' ', c.fields->>'main_subject', c.fields->>'scene', c.fields->>'lighting',
                     c.fields->>'visible_text', c.fields->>'time_of_day',
                     (SELECT string_agg(v, ' ') FROM jsonb_array_elements_text(
                         CASE WHEN jsonb_typeof(c.fields->'objects') = 'array' THEN c.fields->'objects' ELSE '[]' END) v),
                     (SELECT string_agg(v, ' ') FROM jsonb_array_elements_text(
                         CASE WHEN jsonb_typeof(c.fields->'activities') = 'array' THEN c.fields->'activities' ELSE '[]' END) v)
           ) AS fields
    FROM tagging_caption c WHERE c.photo_id = p.id
    ORDER BY (c.caption_pass = 'full') DESC, c.created_at DESC LIMIT 1  -- the full description, else the first pass
) c ON true
LEFT JOIN tagging_ownercaption o ON o.photo_id = p.id
LEFT JOIN LATERAL (
    SELECT string_agg(DISTINCT pp.name, ' ') AS names
    FROM people_face fc JOIN people_person pp ON pp.id = fc.person_id
    WHERE fc.photo_id = p.id AND pp.name <> ''
) n ON true
LEFT JOIN ocr_phototext ocr ON ocr.photo_id = p.id
LEFT JOIN LATERAL (
    SELECT string_agg(replace(tg.path, '/', ' '), ' ') FILTER (WHERE pt.state = 'accepted') AS accepted,
           string_agg(tg.name, ' ') FILTER (WHERE pt.state = 'suggested') AS suggested
    FROM tagging_phototag pt JOIN tagging_tag tg ON tg.id = pt.tag_id
    WHERE pt.photo_id = p.id
) t ON true
LEFT JOIN LATERAL (
    SELECT string_agg(regexp_replace(sf.relpath, '[/_.\-]+', ' ', 'g'), ' ') AS paths
    FROM gallery_sourcefile sf WHERE sf.photo_id = p.id AND NOT sf.missing
) f ON true
WHERE p.id = ANY(%s)
ON CONFLICT (photo_id) DO UPDATE SET document = EXCLUDED.document, updated_at = EXCLUDED.updated_at
"""


def refresh(photo_ids: Iterable[int], *, chunk: int = 2000) -> int:
    """Rebuild the search documents of these photos. Returns how many were written."""
    ids = list(photo_ids)
    written = 0
    with connection.cursor() as cur:
        for i in range(0, len(ids), chunk):
            cur.execute(_REFRESH_SQL, [ids[i : i + chunk]])
            written += cur.rowcount
    return written


def refresh_all(*, chunk: int = 2000) -> int:
    from gallery.models import Photo

    return refresh(Photo.objects.values_list("pk", flat=True).iterator(), chunk=chunk)
