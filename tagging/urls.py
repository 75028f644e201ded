from django.urls import path

from tagging import tag_views, views

urlpatterns = [
    path("tags/", tag_views.tag_list, name="tag_list"),
    path("tags/<int:pk>/rename/", tag_views.tag_rename, name="tag_rename"),
    path("tags/<int:pk>/merge/", tag_views.tag_merge, name="tag_merge"),
    path("tags/<int:pk>/alias/", tag_views.tag_alias, name="tag_alias"),
    path("tags/<int:pk>/activate/", tag_views.tag_activate, name="tag_activate"),
    path("tags/<int:pk>/export/", tag_views.tag_export, name="tag_export"),
    path("tags/<path:path>/", tag_views.tag_detail, name="tag_detail"),
    path("photos/<int:pk>/tags/", tag_views.photo_tags, name="photo_tags"),
    path("photos/<int:pk>/tags/add/", tag_views.photo_tag_add, name="photo_tag_add"),
    path("photos/<int:pk>/tags/<int:tag_id>/<str:decision>/", tag_views.photo_tag_decide, name="photo_tag_decide"),
    path("photos/<int:pk>/caption/", tag_views.photo_caption, name="photo_caption"),
    path("photos/<int:pk>/export/", tag_views.photo_export, name="photo_export"),
    path("review/", tag_views.review_index, name="review"),
    path("review/undo/", tag_views.review_undo, name="review_undo"),
    path("review/photo/", tag_views.review_next_photo, name="review_next_photo"),
    path("review/photo/<int:pk>/", tag_views.review_photo, name="review_photo"),
    path("review/tag/<int:pk>/", tag_views.review_tag, name="review_tag"),
    path("review/tag/<int:pk>/decide/", tag_views.review_decide, name="review_decide"),
    path("review/tag/<int:pk>/bulk/", tag_views.review_bulk, name="review_bulk"),
    path("review/tag/<int:pk>/bulk/preview/", tag_views.review_bulk_preview, name="review_bulk_preview"),
    path("search/", views.search, name="search"),
    path("search/image/", views.search_image, name="search_image"),
    path("search/export/", tag_views.search_export, name="search_export"),
    path("libraries/<int:pk>/export/", tag_views.library_export, name="library_export"),
    path("photos/<int:pk>/similar/", views.similar, name="similar"),
    path("duplicates/", views.duplicates, name="duplicates"),
    path("duplicates/refresh/", views.duplicates_refresh, name="duplicates_refresh"),
]
