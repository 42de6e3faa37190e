"""WSGI entry point: HTTP (API, pages, webhooks) in production runs on gunicorn sync workers."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refundguard.settings")

application = get_wsgi_application()
