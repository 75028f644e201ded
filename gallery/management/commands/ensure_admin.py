import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from gallery.accounts import ensure_admin


class Command(BaseCommand):
    help = "Create the admin account on first run and print its credentials once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("SHOEBOX_ADMIN_USER", "admin"))

    def handle(self, *args, **options):
        try:
            password = ensure_admin(options["username"])
        except ValidationError as exc:
            reasons = "\n".join(f"  - {message}" for message in exc.messages)
            raise CommandError(
                f"SHOEBOX_ADMIN_PASSWORD is too weak, so no admin account was created:\n{reasons}\n"
                "Choose a stronger one, or unset it to have one generated."
            ) from None
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
