import json

from django.core.management.base import BaseCommand

from tagging import tags
from tagging.search import search


class Command(BaseCommand):
    help = "Search the library as the search box does; prints ranked results with scores and signals."

    def add_arguments(self, parser):
        parser.add_argument("query")
        parser.add_argument("--limit", type=int, default=20)
        parser.add_argument("--json", action="store_true", help="Print one JSON object")
        parser.add_argument("--more", action="store_true", help="Include weak image matches below the cut-off")

    def handle(self, *args, **options):
        response = search(options["query"], limit=options["limit"], include_weak=options["more"])
        ids = [r.photo.pk for r in response.results]
        captions, accepted = tags.shown_captions(ids), tags.accepted_paths(ids)
        rows = [
            {
                "photo_id": r.photo.pk,
                "score": r.score,
                "signals": {k: round(v, 4) for k, v in r.signals.items()},
                "weak": r.weak,
                "taken_at": r.photo.local_taken_at.isoformat(),
                "path": next((f.relpath for f in r.photo.present_files()), ""),
                "caption": captions[r.photo.pk],
                "tags": accepted.get(r.photo.pk, []),
            }
            for r in response.results
        ]
        if options["json"]:
            self.stdout.write(json.dumps({
                "query": options["query"],
                "errors": response.errors,
                "notices": response.notices,
                "threshold": response.threshold,
                "hidden_weak": response.hidden_weak,
                "results": rows,
            }, ensure_ascii=False, indent=1))
            return
        for message in response.errors + response.notices:
            self.stderr.write(message)
        for i, row in enumerate(rows, 1):
            signals = ", ".join(row["signals"])
            self.stdout.write(f"{i:3}. {row['score']:6.1f}  #{row['photo_id']:<7} {row['path']}  [{signals}]")
        if response.hidden_weak:
            self.stdout.write(f"({response.hidden_weak} weaker image matches hidden; --more shows them)")
