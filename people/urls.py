from django.urls import path

from people import views

urlpatterns = [
    path("people/", views.people_list, name="people"),
    path("people/names/", views.person_names, name="people_names"),
    path("people/<int:pk>/", views.person_detail, name="person_detail"),
    path("people/<int:pk>/name/", views.person_name, name="person_name"),
    path("people/<int:pk>/merge/", views.person_merge, name="person_merge"),
    path("people/<int:pk>/hide/", views.person_hide, name="person_hide"),
    path("people/<int:pk>/faces/move/", views.person_faces_move, name="person_faces_move"),
    path("faces/<int:pk>/crop.jpg", views.face_crop, name="face_crop"),
    path("review/people/", views.review_people, name="review_people"),
    path("review/people/<int:pk>/", views.review_person, name="review_person"),
]
