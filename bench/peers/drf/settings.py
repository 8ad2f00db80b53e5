"""Django settings for the DRF peer: one database (userbase's), no sessions, JSON only.

Kept minimal on purpose, so DRF is measured at its best: no session or auth middleware, no
browsable API, persistent database connections (Django's default, CONN_MAX_AGE=0, would open a
connection per request).
"""

import os

SECRET_KEY = "bench-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "bench.peers.drf.urls"
INSTALLED_APPS = ["rest_framework", "bench.peers.drf"]
MIDDLEWARE: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["DRF_DB_NAME"],
        "USER": "postgres",
        "HOST": os.environ.get("DRF_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("DRF_DB_PORT", "5432"),
        "CONN_MAX_AGE": None,
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}
