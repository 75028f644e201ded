"""A throwaway database on the embedded Postgres server for one benchmark run.

Each benchmark names its database in ``SHOEBOX_DB_NAME`` before Django is
set up, then calls ``create()`` (drop if left over, create, migrate) and
``drop()`` at the end, so benchmarks never touch the owner's data.
"""

from __future__ import annotations

import os


def _admin_connection(params: dict):
    import psycopg

    return psycopg.connect(host=params["host"], port=params["port"], user="postgres", dbname="postgres",
                           autocommit=True)


def create() -> dict:
    """Create and migrate the database named by SHOEBOX_DB_NAME; return the server's connection params."""
    from django.conf import settings

    from gallery import embedded_postgres

    name = os.environ["SHOEBOX_DB_NAME"]
    params = embedded_postgres.start_database(settings.DATABASES["default"])
    with _admin_connection(params) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return params


def drop(params: dict) -> None:
    from django.db import connections

    connections.close_all()
    with _admin_connection(params) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {os.environ['SHOEBOX_DB_NAME']} WITH (FORCE)")
