"""Django database backend: PostgreSQL, starting the embedded server on first use.

Settings use ``ENGINE = "gallery.db"`` when ``DATABASE_URL`` is not set. The
server is started lazily, when Django first opens a connection, so commands
that never touch the database (``--help``, ``collectstatic``) stay fast, and
every process (web, worker, tests) gets the same running postmaster.
``manage.py dbshell`` starts it too, and runs the ``psql`` shipped with it.
"""

from django.db.backends.postgresql import base, client

from gallery import embedded_postgres


def _start(settings_dict: dict) -> dict:
    """Start (or reuse) the server of ``settings_dict``; fill in where it listens."""
    server = embedded_postgres.start_database(settings_dict)
    settings_dict["HOST"] = server["host"]
    settings_dict["PORT"] = str(server["port"])
    settings_dict["USER"] = server["user"]
    return server


class DatabaseClient(client.DatabaseClient):
    """``dbshell`` on the embedded server: its socket directory and port, and its own psql.

    The bundled psql has the server's version (a system psql may be older, or
    absent); it is used whatever ``psql`` is on PATH.
    """

    @classmethod
    def settings_to_cmd_args_env(cls, settings_dict, parameters):
        settings_dict = dict(settings_dict)
        server = _start(settings_dict)
        args, env = super().settings_to_cmd_args_env(settings_dict, parameters)
        args[0] = server["psql"]
        return args, env


class DatabaseWrapper(base.DatabaseWrapper):
    client_class = DatabaseClient

    def get_connection_params(self):
        _start(self.settings_dict)
        return super().get_connection_params()
