from django.core.management.base import BaseCommand

from gallery import pipeline, stages
from gallery.progress import ProgressBar


class Command(BaseCommand):
    help = "Run every pending processing stage: in the foreground with --sync, else queue it for the worker."

    def add_arguments(self, parser):
        parser.add_argument("--sync", action="store_true", help="Do the work here, with a progress bar")
        parser.add_argument("--stage", choices=sorted(pipeline.RUNNERS), help="Only this stage")

    def handle(self, *args, **options):
        chosen = [options["stage"]] if options["stage"] else list(pipeline.RUNNERS)
        for stage in chosen:
            if options["sync"]:
                bar = ProgressBar(stage) if options["verbosity"] else None
                totals = pipeline.run_pending(stage, progress=bar)
                self.stdout.write(f"{stage}: {totals['done']} done, {totals['failed']} failed")
            else:
                n = stages.enqueue_pending(stage)
                self.stdout.write(f"{stage}: {n} photos queued for the worker")
