"""Django database backend: PostgreSQL, starting the embedded server on first use.

Settings use ``ENGINE = "gallery.db"`` when ``DATABASE_URL`` is not set. The
server is started lazily, when Django first opens a connection, so commands
that never touch the database (``--help``, ``collectstatic``) stay fast, and
every process (web, worker, tests) gets the same running postmaster.
"""

from pathlib import Path

from django.db.backends.postgresql import base

from gallery import embedded_postgres


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        pgdata = Path(self.settings_dict["OPTIONS_EMBEDDED_PGDATA"])
        params = embedded_postgres.start(pgdata)
        self.settings_dict["HOST"] = params["host"]
        self.settings_dict["PORT"] = str(params["port"])
        self.settings_dict["USER"] = params["user"]
        return super().get_connection_params()
