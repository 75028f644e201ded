from django.core.management.base import BaseCommand, CommandError

from gallery import pipeline
from tagging import pipeline as ai


class Command(BaseCommand):
    help = "Run a stage again for every photo, e.g. after changing models. Old results stay until replaced."

    def add_arguments(self, parser):
        parser.add_argument("--stage", required=True, choices=["embedding", "caption"])
        parser.add_argument(
            "--model",
            help="CLIP spec (ARCH:TAG, ARCH:/path, local-dir:/path) or BACKEND:MODEL for captions; "
                 "default: the configured model",
        )
        parser.add_argument("--only-missing", action="store_true", help="Only photos without this model's output")
        parser.add_argument("--sync", action="store_true", help="Do the work here instead of queueing it")

    def handle(self, *args, **options):
        try:
            n = ai.reprocess(options["stage"], model=options["model"], only_missing=options["only_missing"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{n} photos marked for {options['stage']}")
        if options["sync"]:
            totals = pipeline.run_pending(options["stage"])
            self.stdout.write(f"{options['stage']}: {totals['done']} done, {totals['failed']} failed")
        else:
            from gallery import stages

            self.stdout.write(f"{stages.enqueue_pending(options['stage'])} queued for the worker")
