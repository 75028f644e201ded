from django.contrib import admin
from django.urls import include, path

from gallery import views

urlpatterns = [
    path("", views.grid, name="grid"),
    path("photos/<int:pk>/", views.photo_detail, name="photo_detail"),
    path("thumbs/<str:content_hash>/<str:size>.jpg", views.thumbnail, name="thumbnail"),
    path("files/<int:file_id>/", views.original, name="original"),
    path("libraries/", views.library_list, name="library_list"),
    path("libraries/<int:pk>/rescan/", views.library_rescan, name="library_rescan"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/<str:stage>/retry/", views.jobs_retry, name="jobs_retry"),
    path("jobs/<str:stage>/reprocess/", views.jobs_reprocess, name="jobs_reprocess"),
    path("", include("tagging.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
