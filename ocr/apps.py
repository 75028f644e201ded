from django.apps import AppConfig


class OcrConfig(AppConfig):
    name = "ocr"
    verbose_name = "Text in photos"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from ocr import runners

        runners.register()  # the OCR stage: after thumbnails, before captions (SHOEBOX_OCR switches it off)
