"""A minimal Django REST framework peer: a ListAPIView with cursor pagination on `users`."""
