from django.core.management.base import BaseCommand, CommandError

from gallery import engine, stages


class Command(BaseCommand):
    help = "Run a stage again for every photo, e.g. after changing models. Old results stay until replaced."

    def add_arguments(self, parser):
        names = [s.name for s in stages.rerunnable()]
        parser.add_argument("--stage", required=True, help=f"One of: {', '.join(names)}")
        parser.add_argument(
            "--model",
            help="CLIP spec (ARCH:TAG, ARCH:/path, local-dir:/path) or BACKEND:MODEL for captions; "
                 "default: the configured model",
        )
        parser.add_argument("--only-missing", action="store_true", help="Only photos without this model's output")
        parser.add_argument("--sync", action="store_true", help="Do the work here instead of queueing it")

    def handle(self, *args, **options):
        spec = stages.find(options["stage"])
        if spec is None:
            raise CommandError(f"no stage {options['stage']!r}: choose from {', '.join(stages.names())}")
        try:
            n = engine.reprocess(spec, model=options["model"], only_missing=options["only_missing"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{n} photos marked for {spec.name}")
        if options["sync"]:
            totals = engine.run_pending(spec)
            self.stdout.write(f"{spec.name}: {totals['done']} done, {totals['failed']} failed")
        else:
            self.stdout.write(f"{len(engine.enqueue(spec))} queued for the worker")
