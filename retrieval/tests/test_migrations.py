"""Data migrations of the retrieval app, run down and up on the real database."""

import pytest
from django.db import connection

from retrieval import services
from retrieval.selectors import search
from tests.support.migrations import migrate, migrate_to_latest

from .helpers import upload

BEFORE, IDENTIFIERS = ("retrieval", "0013_team_deleted_at"), ("retrieval", "0014_identifier_keywords")


@pytest.mark.django_db(transaction=True)
def test_chunks_written_before_get_their_identifiers_whole(alice, collection_a):
    """A passage indexed by the old analyzer (underscores split) gains its snake_case names, and the
    postings and statistics follow, so the exact name ranks first."""
    exact, _ = upload(
        collection_a, "read.txt", b"asn1_read_value returns the value of an element.", enqueue=False
    )
    longer, _ = upload(
        collection_a,
        "type.txt",
        b"asn1_read_value_type: read value, read type, the value and type.",
        enqueue=False,
    )
    services.documents_ingest(document_ids=[exact.id, longer.id])
    with connection.cursor() as cursor:  # as the insert path wrote them before 0014
        cursor.execute(
            "UPDATE retrieval_chunk SET search_vector = to_tsvector('english', heading_path || ' ' || text)"
        )
        cursor.execute(
            "UPDATE retrieval_chunk SET term_count = "
            "(SELECT coalesce(sum(array_length(u.positions, 1)), 0) FROM unnest(search_vector) u)"
        )
    services.keyword_index_rebuild()
    query = "asn1_read_value value"
    try:
        migrate(BEFORE)
        migrate(IDENTIFIERS)
    finally:
        migrate_to_latest()
    assert [h.document_id for h in search(user=alice, query=query, mode="keyword")] == [exact.id, longer.id]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bool_and(c.indexed_terms = (SELECT sum(term_count) FROM retrieval_chunk WHERE collection_id = c.id))"
            " FROM retrieval_collection c WHERE c.id = %s",
            [collection_a.id],
        )
        assert cursor.fetchone()[0]
        cursor.execute(
            "SELECT df FROM retrieval_term WHERE term = 'asn1_read_value' AND collection_id = %s",
            [collection_a.id],
        )
        assert cursor.fetchone()[0] == 1
