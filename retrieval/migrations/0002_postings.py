"""The BM25 inverted index: one row per (term, chunk), kept beside the chunks in PostgreSQL.

Triggers on retrieval_chunk keep it exact whatever deletes or inserts chunks (the ingestion path, a
cascade from a deleted team, a TRUNCATE): postings and the per-collection statistics (chunk count,
total terms) change in the same statement. The covering index serves both the document-frequency
count and the scoring scan of a query term without touching the heap.
"""

from django.db import migrations

SQL = """
CREATE TABLE retrieval_posting (
    term text NOT NULL,
    collection_id bigint NOT NULL,
    chunk_id bigint NOT NULL,
    tf smallint NOT NULL,
    dl integer NOT NULL
);
CREATE INDEX posting_term_collection ON retrieval_posting (term, collection_id) INCLUDE (chunk_id, tf, dl);
CREATE INDEX posting_chunk ON retrieval_posting (chunk_id);

CREATE FUNCTION retrieval_chunks_indexed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO retrieval_posting (term, collection_id, chunk_id, tf, dl)
    SELECT u.lexeme, n.collection_id, n.id, array_length(u.positions, 1), n.term_count
    FROM new_chunks n, unnest(n.search_vector) u;
    UPDATE retrieval_collection c
    SET indexed_chunks = c.indexed_chunks + x.n, indexed_terms = c.indexed_terms + x.t
    FROM (SELECT collection_id, count(*) AS n, coalesce(sum(term_count), 0) AS t
          FROM new_chunks GROUP BY collection_id) x
    WHERE c.id = x.collection_id;
    RETURN NULL;
END $$;

CREATE FUNCTION retrieval_chunks_unindexed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM retrieval_posting p USING old_chunks o WHERE p.chunk_id = o.id;
    UPDATE retrieval_collection c
    SET indexed_chunks = greatest(c.indexed_chunks - x.n, 0), indexed_terms = greatest(c.indexed_terms - x.t, 0)
    FROM (SELECT collection_id, count(*) AS n, coalesce(sum(term_count), 0) AS t
          FROM old_chunks GROUP BY collection_id) x
    WHERE c.id = x.collection_id;
    RETURN NULL;
END $$;

CREATE FUNCTION retrieval_chunks_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE retrieval_posting;
    UPDATE retrieval_collection SET indexed_chunks = 0, indexed_terms = 0;
    RETURN NULL;
END $$;

CREATE TRIGGER chunk_indexed AFTER INSERT ON retrieval_chunk
    REFERENCING NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION retrieval_chunks_indexed();
CREATE TRIGGER chunk_unindexed AFTER DELETE ON retrieval_chunk
    REFERENCING OLD TABLE AS old_chunks FOR EACH STATEMENT EXECUTE FUNCTION retrieval_chunks_unindexed();
CREATE TRIGGER chunk_truncated AFTER TRUNCATE ON retrieval_chunk
    FOR EACH STATEMENT EXECUTE FUNCTION retrieval_chunks_truncated();
"""

REVERSE = """
DROP TRIGGER chunk_truncated ON retrieval_chunk;
DROP TRIGGER chunk_unindexed ON retrieval_chunk;
DROP TRIGGER chunk_indexed ON retrieval_chunk;
DROP FUNCTION retrieval_chunks_truncated();
DROP FUNCTION retrieval_chunks_unindexed();
DROP FUNCTION retrieval_chunks_indexed();
DROP TABLE retrieval_posting;
"""


class Migration(migrations.Migration):
    dependencies = [("retrieval", "0001_initial")]

    operations = [migrations.RunSQL(SQL, reverse_sql=REVERSE)]
