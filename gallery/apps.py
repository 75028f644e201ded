from django.apps import AppConfig


class GalleryConfig(AppConfig):
    name = "gallery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django_q.signals import post_spawn

        from gallery import recovery, runners

        runners.register()
        # A worker process that starts (first, or after one was killed or timed out)
        # takes back the work of dead ones.
        post_spawn.connect(recovery.on_worker_start, dispatch_uid="shoebox-recovery")
