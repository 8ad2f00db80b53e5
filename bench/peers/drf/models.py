"""userbase's `users` table, read by Django without managing it."""

from django.db import models


class User(models.Model):
    username = models.CharField(max_length=32)
    email = models.CharField(max_length=320)
    display_name = models.CharField(max_length=100, null=True)
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "users"
