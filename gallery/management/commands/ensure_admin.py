import os

from django.core.management.base import BaseCommand

from gallery.accounts import ensure_admin


class Command(BaseCommand):
    help = "Create the admin account on first run and print its credentials once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("SHOEBOX_ADMIN_USER", "admin"))

    def handle(self, *args, **options):
        password = ensure_admin(options["username"])
        if password is None:
            return
        if os.environ.get("SHOEBOX_ADMIN_PASSWORD"):
            self.stdout.write(f"Created admin account “{options['username']}” with SHOEBOX_ADMIN_PASSWORD.")
        else:
            self.stdout.write(
                "\n  Created the admin account — shown once, write it down:\n"
                f"    username: {options['username']}\n    password: {password}\n"
                "  (change it later with: .venv/bin/python manage.py changepassword "
                f"{options['username']})\n"
            )
