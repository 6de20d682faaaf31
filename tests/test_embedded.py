import os

import pytest

from assistant import embedded


@pytest.mark.parametrize(
    ("memory_mb", "expected"),
    [(512, 128), (2048, 512), (4096, 1024), (65536, 1024)],
)
def test_shared_buffers_is_a_quarter_of_memory_within_bounds(monkeypatch, memory_mb, expected):
    monkeypatch.delenv("DOCENT_PG_SHARED_BUFFERS_MB", raising=False)
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": memory_mb * 256}
    monkeypatch.setattr(os, "sysconf", pages.__getitem__)
    monkeypatch.setattr(embedded.Path, "read_text", lambda self: "max")  # no container limit
    assert embedded.shared_buffers_mb() == expected


def test_shared_buffers_follows_a_container_limit(monkeypatch):
    monkeypatch.delenv("DOCENT_PG_SHARED_BUFFERS_MB", raising=False)
    monkeypatch.setattr(os, "sysconf", {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 64 * 1024 * 256}.__getitem__)
    monkeypatch.setattr(embedded.Path, "read_text", lambda self: str(2 * 1024**3))  # a 2 GB container
    assert embedded.shared_buffers_mb() == 512


def test_shared_buffers_can_be_chosen(monkeypatch):
    monkeypatch.setenv("DOCENT_PG_SHARED_BUFFERS_MB", "300")
    assert embedded.shared_buffers_mb() == 300


def test_a_new_embedded_server_starts_with_its_buffer_cache_and_durability(tmp_path, monkeypatch):
    """pgserver starts a new server before it can be configured; it must not keep 128 MB. A server
    already running is not restarted under its users: a new size waits for its next start."""
    import pgserver
    import psycopg

    monkeypatch.setenv("DOCENT_PG_SHARED_BUFFERS_MB", "200")
    url = embedded.postgres_url(tmp_path)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SHOW shared_buffers").fetchone()[0] == "200MB"
            monkeypatch.setenv("DOCENT_PG_SHARED_BUFFERS_MB", "300")
            assert embedded.postgres_url(tmp_path) == url
            assert conn.execute("SHOW shared_buffers").fetchone()[0] == "200MB"  # the same server
            pending = (
                "SELECT setting FROM pg_file_settings WHERE name = 'shared_buffers'"
                " AND sourcefile LIKE '%postgresql.auto.conf'"  # pending: "could not be applied" until a restart
            )
            assert [row[0] for row in conn.execute(pending)] == ["300MB"]
            # Durability is on unless asked off (the test suite's server), and that takes at once.
            durability = "SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes')"
            assert conn.execute(durability).fetchone() == ("on", "on", "on")
            embedded.postgres_url(tmp_path, durable=False)
            assert conn.execute(durability).fetchone() == ("off", "off", "off")
    finally:
        pgserver.get_server(tmp_path / "postgres").cleanup()  # this process holds the only handle
