from django.contrib import admin
from django.contrib.auth import views as auth_views
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
    path("", include("people.urls")),
    # Log in and out, and a signed-in user's password change. No password reset by mail: Shoebox
    # sends no mail (`manage.py changepassword USER` resets one; see README).
    path("accounts/", include([
        path("login/", auth_views.LoginView.as_view(), name="login"),
        path("logout/", auth_views.LogoutView.as_view(), name="logout"),
        path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
        path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    ])),
    path("admin/", admin.site.urls),
]
