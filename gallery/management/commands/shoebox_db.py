from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from gallery import embedded_postgres


class Command(BaseCommand):
    help = "Start, stop or show the embedded Postgres server (not used when DATABASE_URL is set)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args, **options):
        db = settings.DATABASES["default"]
        if "OPTIONS_EMBEDDED_PGDATA" not in db:
            raise CommandError("DATABASE_URL is set: Shoebox is using an external Postgres, not the embedded one.")
        pgdata = db["OPTIONS_EMBEDDED_PGDATA"]
        action = options["action"]
        if action == "start":
            params = embedded_postgres.start_database(db)
            self.stdout.write(f"embedded Postgres running, socket in {params['host']}")
        elif action == "stop":
            stopped = embedded_postgres.stop(pgdata)
            self.stdout.write("embedded Postgres stopped" if stopped else "embedded Postgres was not running")
        else:
            info = embedded_postgres.status(pgdata)
            if info is None:
                self.stdout.write(f"not running (data in {pgdata})")
            else:
                self.stdout.write(f"running: pid {info['pid']}, socket in {info['socket_dir']}, data in {pgdata}")
