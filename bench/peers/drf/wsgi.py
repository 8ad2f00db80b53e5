"""The WSGI entry point gunicorn serves: `gunicorn bench.peers.drf.wsgi:application`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.drf.settings")
application = get_wsgi_application()
