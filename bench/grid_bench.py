"""Gallery grid at 100,000 photos: keyset pages stay as fast deep in the library as at its top.

Loads the same synthetic 100k library as ``bench/search_bench.py`` (COPY),
then times, in the same run, the queries behind the grid page
(``gallery.browse``): the first page, a page 90% of the way down reached by
its keyset cursor, the same deep page fetched with OFFSET (the baseline a
naive paginator would use), each filter (library, folder, year), the year
list, and the photo page's newer/older neighbours.

Run: ``.venv/bin/python bench/grid_bench.py [--photos 100000] [--repeat 30]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_bench as sb  # noqa: E402  (names its bench database, SHOEBOX_DB_NAME)

import benchdb  # noqa: E402
from measure import timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    lib = sb.make_library(args.photos, 32, max(10, args.photos // 100))
    params = benchdb.create()
    conn = sb.bench_connection(params)
    try:
        sb.load_library(conn, lib, "grid-bench")
        conn.execute("VACUUM ANALYZE")
        from gallery import browse
        from gallery.models import Library, Photo, SourceFile

        library = Library.objects.get()
        folder = SourceFile.objects.order_by("id").values_list("folder", flat=True)[args.photos // 2]
        top_folder = folder.split("/")[0]
        ordered = Photo.objects.visible().newest_first()
        deep = ordered[int(args.photos * 0.9)]
        cursor = browse.encode_cursor(deep)
        year = deep.taken_at.year
        size = 60

        in_folder = Photo.objects.in_folder(library.pk, top_folder).newest_first()[100]
        sizes = {f: SourceFile.objects.count_under(library.pk, f, cap=10**9) for f in (top_folder, folder)}

        def walked(filters):
            """The grid page with the folder's photos found along the (taken_at, id) index: the plan before
            small folders were sorted."""
            before, browse.COLLECT_BELOW = browse.COLLECT_BELOW, 0
            try:
                return browse.grid_page(filters)
            finally:
                browse.COLLECT_BELOW = before

        cases = [
            ("first page", lambda: browse.grid_page(browse.GridFilters())),
            ("page at 90% depth, keyset cursor", lambda: browse.grid_page(browse.GridFilters(), cursor=cursor)),
            ("page at 90% depth, OFFSET (baseline)",
             lambda: list(Photo.objects.visible().newest_first()[int(args.photos * 0.9): int(args.photos * 0.9) + size + 1])),
            ("library filter, deep cursor",
             lambda: browse.grid_page(browse.GridFilters(library_id=library.pk), cursor=cursor)),
            (f"folder filter ({top_folder}/…)",
             lambda: browse.grid_page(browse.GridFilters(library_id=library.pk, folder=top_folder))),
            (f"folder filter ({top_folder}/…), date-index walk (baseline)",
             lambda: walked(browse.GridFilters(library_id=library.pk, folder=top_folder))),
            (f"leaf folder ({folder})",
             lambda: browse.grid_page(browse.GridFilters(library_id=library.pk, folder=folder))),
            (f"leaf folder ({folder}), date-index walk (baseline)",
             lambda: walked(browse.GridFilters(library_id=library.pk, folder=folder))),
            ("photo page neighbours in a folder",
             lambda: (browse.neighbour(in_folder, browse.GridFilters(library_id=library.pk, folder=top_folder), newer=True),
                      browse.neighbour(in_folder, browse.GridFilters(library_id=library.pk, folder=top_folder),
                                       newer=False))),
            (f"year filter ({year})", lambda: browse.grid_page(browse.GridFilters(year=year))),
            ("year list (loose index scan)", lambda: browse.years(browse.GridFilters())),
            ("photo page neighbours (newer + older)",
             lambda: (browse.neighbour(deep, browse.GridFilters(), newer=True),
                      browse.neighbour(deep, browse.GridFilters(), newer=False))),
        ]
        print(f"machine: {sb.machine(conn)}")
        print(f"{args.photos:,} photos, {size} per page, {args.repeat} repeats; "
              + ", ".join(f"folder {f!r} holds {n:,} files" for f, n in sizes.items()) + "\n")
        print(f"{'query':45} {'median ms':>10} {'p95 ms':>8}")
        results = {}
        for label, fn in cases:
            med, p95 = timed(fn, args.repeat)
            results[label] = med
            print(f"{label:45} {med:10.2f} {p95:8.2f}")
        keyset = results["page at 90% depth, keyset cursor"]
        offset = results["page at 90% depth, OFFSET (baseline)"]
        print(f"\nOFFSET / keyset at 90% depth: {offset / keyset:.1f}x")
        walk = results[f"folder filter ({top_folder}/…), date-index walk (baseline)"]
        print(f"folder filter, date-index walk / sorted: {walk / results[f'folder filter ({top_folder}/…)']:.1f}x")
    finally:
        conn.close()
        if not args.keep:
            benchdb.drop(params)


if __name__ == "__main__":
    main()
