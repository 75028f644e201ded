from django.apps import AppConfig


class OcrConfig(AppConfig):
    name = "ocr"
    verbose_name = "Text in photos"
    default_auto_field = "django.db.models.BigAutoField"
