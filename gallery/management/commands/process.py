from django.core.management.base import BaseCommand, CommandError

from gallery import engine, stages
from gallery.progress import ProgressBar


class Command(BaseCommand):
    help = "Run every pending processing stage: in the foreground with --sync, else queue it for the worker."

    def add_arguments(self, parser):
        parser.add_argument("--sync", action="store_true", help="Do the work here, with a progress bar and ETA")
        parser.add_argument("--stage", help=f"Only this stage ({', '.join(stages.names())})")

    def handle(self, *args, **options):
        only = options["stage"]
        if only and stages.find(only) is None:
            raise CommandError(f"no stage {only!r}: choose from {', '.join(stages.names())}")
        if options["sync"]:
            bars = (lambda stage: ProgressBar(stage)) if options["verbosity"] else None
            results = engine.run_all_pending(only=only, progress_for=bars)
            for stage, totals in results.items():
                self.stdout.write(f"{stage}: {totals['done']} done, {totals['failed']} failed")
            for message in engine.unavailable_messages():
                self.stderr.write(message)
        else:
            for stage, n in engine.queue_all_pending(only=only).items():
                self.stdout.write(f"{stage}: {n} photos queued for the worker")
