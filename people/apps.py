from django.apps import AppConfig


class PeopleConfig(AppConfig):
    name = "people"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from gallery import scans
        from people import regions, runners

        runners.register()  # the faces stage: after thumbnails, when settings.FACES is on

        # Face regions in the files become named faces; first, so the search documents
        # rebuilt by the hooks after it already have the names.
        scans.AFTER_SCAN.insert(0, regions.sync_photos)
