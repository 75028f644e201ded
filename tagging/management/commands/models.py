from django.core.management.base import BaseCommand

from tagging import weights


class Command(BaseCommand):
    help = "List the configured models and whether their weights are here; `models pull` downloads them."

    def add_arguments(self, parser):
        parser.add_argument("action", nargs="?", choices=["list", "pull"], default="list")
        parser.add_argument("--if-online", action="store_true",
                            help="(make run) pull what is missing unless SHOEBOX_OFFLINE is set or the hub "
                                 "cannot be reached; never fails")

    def handle(self, *args, **options):
        if options["action"] == "pull" and options["if_online"]:
            for name, outcome in weights.pull_if_online(lambda text: self.stderr.write(text)):
                self.stdout.write(f"{name}: {outcome}")
            return
        if options["action"] == "pull":
            failed = False
            for name, outcome in weights.pull_all(progress=lambda text: self.stderr.write(text)):
                self.stdout.write(f"{name}: {outcome}")
                failed = failed or outcome.startswith("FAILED")
            if failed:
                raise SystemExit(1)
            return
        for status in weights.configured_models():
            mark = "present" if status.available else "MISSING"
            self.stdout.write(f"{status.role:16} {status.name}  [{mark}]")
            if not status.available:
                self.stdout.write(f"{'':16} {status.message}")
