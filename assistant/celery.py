import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings.local")

app = Celery("docent")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def queue_depth() -> int:
    """Tasks waiting in the default queue; -1 when the broker cannot say (down, or not Redis).
    Bounded: one connection attempt of at most a second, so neither /metrics nor the sweep hangs."""
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=0, timeout=1)
            return conn.default_channel.client.llen(app.conf.task_default_queue)
    except Exception:  # whatever the transport raises: an unknown depth, not an error
        return -1


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
