from django.urls import path

from tagging import views

urlpatterns = [
    path("jobs/<str:stage>/reprocess/", views.jobs_reprocess, name="jobs_reprocess"),
]
