from django.apps import AppConfig


class TaggingConfig(AppConfig):
    name = "tagging"
    default_auto_field = "django.db.models.BigAutoField"
