"""The same paths as userbase: /users/ and /users/{id}."""

from django.urls import path

from bench.peers.drf.views import UserDetail, UserList

urlpatterns = [
    path("users/", UserList.as_view()),
    path("users/<int:pk>", UserDetail.as_view()),
]
