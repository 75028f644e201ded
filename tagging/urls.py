from django.urls import path

from tagging import views

urlpatterns = [
    path("search/", views.search, name="search"),
    path("search/image/", views.search_image, name="search_image"),
    path("photos/<int:pk>/similar/", views.similar, name="similar"),
    path("duplicates/", views.duplicates, name="duplicates"),
    path("duplicates/refresh/", views.duplicates_refresh, name="duplicates_refresh"),
]
