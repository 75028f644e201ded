import os

from django.core.management.base import BaseCommand

from gallery.supervisor import serve


class Command(BaseCommand):
    help = (
        "Run the web server (gunicorn) and the worker (qcluster) until Ctrl-C, then stop the database. "
        "Refuses to start while another serve runs on the same SHOEBOX_DATA_DIR."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=os.environ.get("SHOEBOX_BIND", "127.0.0.1:8000"))
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("SHOEBOX_WEB_WORKERS", "2")))

    def handle(self, *args, **options):
        code = serve(options["bind"], options["web_workers"], out=self.stdout, err=self.stderr)
        if code:
            raise SystemExit(code)
