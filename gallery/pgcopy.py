"""New rows of a model written with PostgreSQL's COPY instead of INSERT (the scan's photos and files).

``bulk_create`` of 200 photos is one INSERT with some 8,000 parameters that
Django compiles value by value and psycopg splits back into the query text;
COPY streams the same rows with no SQL to build or parse. Values are still
prepared by each field (``pre_save``, ``get_db_prep_save``), as ``save()``
would, so what is stored is the same — except plain values (a ``str`` for a
text field, an ``int`` for an integer field …) that preparing would hand back
unchanged, which are written as they are.
"""

from __future__ import annotations

from django.db import connection, models
from django.db.models import Model

# Fields whose preparation leaves a value of this exact type as it is (``int(v)``, ``str(v)`` …)
# and that change nothing on save: such values are written as they are, the rest prepared.
_PLAIN = {
    models.CharField: str, models.TextField: str, models.BooleanField: bool, models.FloatField: float,
    models.IntegerField: int, models.BigIntegerField: int, models.SmallIntegerField: int,
    models.PositiveIntegerField: int, models.PositiveSmallIntegerField: int,
    models.PositiveBigIntegerField: int,
}  # fmt: skip


def _value(field, kind: type | None, obj, db):
    if kind is not None:
        value = getattr(obj, field.attname)
        if value is None or type(value) is kind:
            return value
    return field.get_db_prep_save(field.pre_save(obj, True), db)


def insert(objs: list[Model]) -> None:
    """Insert ``objs`` (new instances of one model) in the current transaction; each gets its primary key.

    The keys are taken from the table's sequence first, so they are known
    without reading the rows back. COPY has no ``ON CONFLICT``: a row that
    breaks a constraint fails the whole call, as a plain ``bulk_create`` does.
    """
    if not objs:
        return
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="pgcopy.insert")  # as bulk_create does
    meta = type(objs[0])._meta
    fields = meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cur:
        cur.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                    [meta.db_table, meta.pk.column, len(objs)])
        for obj, (pk,) in zip(objs, cur.fetchall()):
            obj.pk = pk
        db = cur.db  # the connection itself, not the per-thread proxy looked up for every value
        plain = [_PLAIN.get(type(f)) for f in fields]
        with cur.cursor.copy(f"COPY {db.ops.quote_name(meta.db_table)} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row([_value(f, kind, obj, db) for f, kind in zip(fields, plain)])
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
