from django.apps import AppConfig


class TaggingConfig(AppConfig):
    name = "tagging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from gallery import recovery, scans
        from gallery import runners as gallery_runners
        from ocr import runners as ocr_runners
        from tagging import documents, export_jobs, runners, search, tags

        runners.register()  # embedding, caption, tag scores: after thumbnails, cheap first
        export_jobs.register()  # on demand: only for the photos the owner exports
        # Keywords in the files become accepted tags, then the search documents are rebuilt.
        scans.AFTER_SCAN.append(tags.import_file_keywords)
        scans.AFTER_SCAN.append(documents.refresh)
        # A photo found to hold an older photo's content hands its tag decisions and caption over.
        gallery_runners.ON_MERGE.append(tags.carry_over)
        # Naming, merging or moving faces changes whose names a photo's document holds.
        from people import naming

        naming.PHOTOS_CHANGED.append(documents.refresh)
        # Text read in photos is searchable as soon as it is read.
        ocr_runners.DOCUMENTS_CHANGED.append(documents.refresh)
        # Busy years get a search graph of their own, one per tick.
        recovery.ON_TICK.append(search.build_year_graphs)
