import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings.local")

app = Celery("docent")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _serve_metrics(**_) -> None:
    """DOCENT_WORKER_METRICS_PORT: the worker serves its docent_worker_* metrics itself (for a worker
    on a host without a web process to read its PROMETHEUS_MULTIPROC_DIR)."""
    port, directory = os.environ.get("DOCENT_WORKER_METRICS_PORT"), os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not port:
        return
    if not directory:
        raise RuntimeError("DOCENT_WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR (an empty directory)")
    from assistant.metrics import serve_worker_metrics

    serve_worker_metrics(int(port), directory, addr=os.environ.get("DOCENT_WORKER_METRICS_ADDR", "127.0.0.1"))
