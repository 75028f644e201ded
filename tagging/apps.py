from django.apps import AppConfig


class TaggingConfig(AppConfig):
    name = "tagging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from gallery import scans
        from tagging import documents, runners

        runners.register()  # embedding, then caption: after thumbnails, cheap first
        scans.AFTER_SCAN.append(documents.refresh)
