from django.apps import AppConfig


class TaggingConfig(AppConfig):
    name = "tagging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The AI stages run after thumbnails, in this order (cheap first).
        from django.conf import settings

        from gallery import pipeline as gallery_pipeline
        from gallery import stages
        from gallery.models import PhotoStage
        from tagging import documents, pipeline

        gallery_pipeline.AFTER_SCAN.append(documents.refresh)

        stages.register(
            PhotoStage.Stage.EMBEDDING,
            stages.StageSpec(
                "tagging.tasks.embed", pipeline.embed_batch,
                lambda: settings.CLIP_BATCH * 4, pipeline.configured_clip_model,
            ),
        )
        stages.register(
            PhotoStage.Stage.CAPTION,
            stages.StageSpec(
                "tagging.tasks.caption", pipeline.caption_batch,
                lambda: max(settings.CAPTION_BATCH, 4), pipeline.configured_caption_model,
            ),
        )
