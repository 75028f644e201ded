from django.core.management.base import BaseCommand

from gallery import pipeline, stages
from gallery.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Run every pending processing stage (thumbnail, embedding, caption): in the foreground with "
        "--sync, else queue it for the worker."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sync", action="store_true", help="Do the work here, with a progress bar and ETA")
        parser.add_argument("--stage", choices=list(stages.STAGES), help="Only this stage")

    def handle(self, *args, **options):
        if options["sync"]:
            bars = (lambda stage: ProgressBar(stage)) if options["verbosity"] else None
            results = pipeline.run_all_pending(only=options["stage"], progress_for=bars)
            for stage, totals in results.items():
                self.stdout.write(f"{stage}: {totals['done']} done, {totals['failed']} failed")
            for message in stages.unavailable_messages():
                self.stderr.write(message)
        else:
            for stage, n in pipeline.queue_all_pending(only=options["stage"]).items():
                self.stdout.write(f"{stage}: {n} photos queued for the worker")
