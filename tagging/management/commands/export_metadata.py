import json

from django.core.management.base import BaseCommand, CommandError

from gallery.progress import ProgressBar
from tagging import export_jobs


class Command(BaseCommand):
    help = ("Write accepted tags, captions, titles and ratings back to the photos: XMP sidecars by default "
            "(originals untouched), or into the files with --embedded.")

    def add_arguments(self, parser):
        parser.add_argument("--embedded", action="store_true",
                            help="Write into the original files (atomically; pixels and other metadata kept)")
        parser.add_argument("--dry-run", action="store_true", help="Show what would change, per file; write nothing")
        parser.add_argument("--tag", help="Only photos with this accepted tag (or a tag below it)")
        parser.add_argument("--photo", type=int, action="append", help="Only this photo (repeatable)")
        parser.add_argument("--out", help="Write sidecars under this folder, mirroring the library, not beside the originals")
        parser.add_argument("--naming", choices=export_jobs.NAMINGS, default="darktable",
                            help="IMG.jpg.xmp (darktable, digiKam; default) or IMG.xmp (Lightroom)")
        parser.add_argument("--replace-keywords", action="store_true",
                            help="Replace the keywords already there instead of adding to them")
        parser.add_argument("--json", action="store_true", help="Print one JSON object with every file's outcome")

    def handle(self, *args, **options):
        try:
            export_options = export_jobs.ExportOptions(
                embedded=options["embedded"], naming=options["naming"], out=options["out"] or "",
                replace_keywords=options["replace_keywords"])
            photos = list(export_jobs.select(tag=options["tag"], photo_ids=options["photo"]))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        quiet = options["json"] or options["verbosity"] == 0
        progress = None if quiet else ProgressBar("Exporting")
        files = []
        for n, photo in enumerate(photos, 1):
            for result in export_jobs.export_photo(photo, export_options, dry_run=options["dry_run"]):
                files.append({"photo_id": photo.pk, **result.as_dict()})
            if progress:
                progress(n, len(photos))
        failed = [f for f in files if f["error"]]
        totals = {"photos": len(photos), "files": len(files), "written": sum(f["written"] for f in files),
                  "unchanged": sum(not f["written"] and not f["changes"] and not f["error"] for f in files),
                  "would_change": sum(bool(f["changes"]) for f in files) if options["dry_run"] else 0,
                  "failed": len(failed)}
        if options["json"]:
            self.stdout.write(json.dumps({"dry_run": options["dry_run"], "totals": totals, "files": files},
                                         ensure_ascii=False, indent=1))
        else:
            for f in files:
                if f["error"]:
                    self.stderr.write(f"failed: {f['error']}")
                elif options["dry_run"] and f["changes"]:
                    self.stdout.write(f"{f['path']}:")
                    for key, (before, after) in f["changes"].items():
                        self.stdout.write(f"  {key}: {before!r} → {after!r}")
            self.stdout.write(", ".join(f"{v} {k.replace('_', ' ')}" for k, v in totals.items() if v or k == "photos"))
        if failed:
            raise CommandError(f"{len(failed)} file(s) could not be written (see above)")
