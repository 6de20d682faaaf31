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


def test_embedded_server_is_configured_for_its_next_start(db):
    """The embedded server the tests run on has the buffer cache written to postgresql.auto.conf."""
    from django.db import connection

    connection.ensure_connection()
    if not connection.connection.info.host.startswith(str(embedded.data_dir())):
        pytest.skip("the tests run on an external PostgreSQL server")
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting FROM pg_file_settings WHERE name = 'shared_buffers' AND error IS NULL")
        settings = [row[0] for row in cursor.fetchall()]
    assert settings[-1:] == [f"{embedded.shared_buffers_mb()}MB"]


def test_a_new_embedded_server_starts_with_its_buffer_cache(tmp_path, monkeypatch):
    """pgserver starts a new server before it can be configured; it must not keep 128 MB."""
    import pgserver
    import psycopg

    monkeypatch.setenv("DOCENT_PG_SHARED_BUFFERS_MB", "200")
    url = embedded.postgres_url(tmp_path)
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SHOW shared_buffers").fetchone()[0] == "200MB"
    finally:
        pgserver.get_server(tmp_path / "postgres").cleanup()  # this process holds the only handle
