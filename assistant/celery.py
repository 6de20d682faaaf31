import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings.local")

app = Celery("docent")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
