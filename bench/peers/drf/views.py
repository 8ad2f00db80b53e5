"""The list (cursor pagination, ordered by id) and the read of one user."""

from typing import ClassVar

from rest_framework import generics, serializers
from rest_framework.pagination import CursorPagination

from bench.peers.drf.models import User


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields: ClassVar = ["id", "username", "display_name", "created_at"]


class UserCursor(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000


class UserList(generics.ListAPIView):
    queryset = User.objects.all()
    serializer_class = UserSerializer
    pagination_class = UserCursor


class UserDetail(generics.RetrieveAPIView):
    queryset = User.objects.all()
    serializer_class = UserSerializer
