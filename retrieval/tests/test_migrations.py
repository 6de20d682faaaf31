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


LANGUAGES, PAIRS = ("retrieval", "0018_collection_language"), ("retrieval", "0019_cjk_bigrams")


@pytest.mark.django_db(transaction=True)
def test_chunks_in_chinese_written_before_are_keyed_as_pairs(alice, collection_a, make_collection, team_a):
    """A Chinese passage keyed by the old analyzer (a clause as one term) is keyed again as pairs of
    characters, its collection's postings and statistics follow; another collection is left alone."""
    chinese, _ = upload(collection_a, "zh.txt", "报销时需要提交发票和审批单。".encode(), enqueue=False)
    other = make_collection(team_a, "english")
    english, _ = upload(other, "en.txt", b"Invoices are filed within thirty days.", enqueue=False)
    services.documents_ingest(document_ids=[chinese.id, english.id])
    try:
        migrate(LANGUAGES)
        with connection.cursor() as cursor:  # as the insert path wrote them before 0019
            cursor.execute(
                "UPDATE retrieval_chunk SET search_vector = docent_keywords(heading_path || ' ' || text, 'english')"
            )
            cursor.execute(
                "UPDATE retrieval_chunk SET term_count = "
                "(SELECT coalesce(sum(array_length(u.positions, 1)), 0) FROM unnest(search_vector) u)"
            )
        services.keyword_index_rebuild()
        with connection.cursor() as cursor:
            # No posting for the word (today's search reads tables the old schema lacks).
            cursor.execute(
                "SELECT count(*) FROM retrieval_posting WHERE term_hash = hashtextextended('发票', 0)"
            )
            assert cursor.fetchone()[0] == 0
            cursor.execute(
                "SELECT ctid FROM retrieval_posting WHERE collection_id = %s ORDER BY 1", [other.id]
            )
            untouched = cursor.fetchall()
        migrate(PAIRS)
    finally:
        migrate_to_latest()
    assert [h.document_id for h in search(user=alice, query="发票", mode="keyword")] == [chinese.id]
    with connection.cursor() as cursor:
        cursor.execute("SELECT ctid FROM retrieval_posting WHERE collection_id = %s ORDER BY 1", [other.id])
        assert cursor.fetchall() == untouched
        cursor.execute(
            "SELECT c.indexed_terms = (SELECT sum(term_count) FROM retrieval_chunk WHERE collection_id = c.id),"
            " (SELECT df FROM retrieval_term WHERE term = '发票' AND collection_id = c.id)"
            " FROM retrieval_collection c WHERE c.id = %s",
            [collection_a.id],
        )
        assert cursor.fetchone() == (True, 1)
