import json

from django.core.management.base import BaseCommand, CommandError

from gallery import libraries, scanner, scans
from gallery.progress import ProgressBar


class Command(BaseCommand):
    help = "Import (or rescan) a folder of photos as a library."

    def add_arguments(self, parser):
        parser.add_argument("path", help="Folder to import; rescans are incremental")
        parser.add_argument("--name", help="Library name (default: the folder's name)")
        parser.add_argument("--json", action="store_true", help="Print one JSON object with every file's outcome")
        parser.add_argument(
            "--sync", action="store_true",
            help="Render thumbnails here and now instead of queueing them for the worker",
        )
        parser.add_argument(
            "--reread", action="store_true",
            help="Read the metadata of every file again, unchanged ones too (after an upgrade that reads "
                 "more, e.g. face regions; or sidecars edited by another program)",
        )

    def handle(self, *args, **options):
        as_json = options["json"]
        try:
            library, _ = libraries.add_library(options["path"], options["name"])
        except libraries.LibraryError as exc:
            raise CommandError(str(exc)) from None
        progress = None if as_json or options["verbosity"] == 0 else ProgressBar(f"Scanning {library.name}")
        try:
            report = scans.import_library(library, progress=progress, sync=options["sync"],
                                          reread=options["reread"])
        except (FileNotFoundError, scans.ScanBusy) as exc:
            raise CommandError(str(exc)) from None
        if as_json:
            self.stdout.write(_dumps(report.as_dict()))
        else:
            totals = report.totals
            self.stdout.write(
                ", ".join(f"{v} {k}" for k, v in totals.items() if v) + f" in {report.seconds:.1f}s"
            )
            for f in report.files:
                if f.outcome in (scanner.Outcome.SKIPPED, scanner.Outcome.FAILED) and options["verbosity"] > 1:
                    self.stdout.write(f"  {f.outcome}: {f.path}: {f.reason}")


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=1)
