"""Document frequencies per (term, collection), kept by triggers beside those of the postings.

A query then reads a few rows per term for BM25's idf instead of counting every posting of every
query term in the readable collections (the first of the two posting scans a search used to make).
Triggers of one event fire in name order, so these run after chunk_indexed / chunk_unindexed: the
collection's statistics row they update is locked first, which serialises concurrent ingestion into
one collection before it reaches these rows (no deadlock between two upserts).
"""

from django.db import migrations

SQL = """
CREATE TABLE retrieval_term (
    term text NOT NULL,
    collection_id bigint NOT NULL,
    df integer NOT NULL,
    PRIMARY KEY (term, collection_id)
);
INSERT INTO retrieval_term (term, collection_id, df)
SELECT term, collection_id, count(*) FROM retrieval_posting GROUP BY term, collection_id;

CREATE FUNCTION retrieval_terms_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO retrieval_term AS t (term, collection_id, df)
    SELECT u.lexeme, n.collection_id, count(*) FROM new_chunks n, unnest(n.search_vector) u
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (term, collection_id) DO UPDATE SET df = t.df + excluded.df;
    RETURN NULL;
END $$;

CREATE FUNCTION retrieval_terms_uncounted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE retrieval_term t SET df = t.df - g.n
    FROM (SELECT u.lexeme AS term, o.collection_id, count(*) AS n FROM old_chunks o, unnest(o.search_vector) u
          GROUP BY 1, 2 ORDER BY 1, 2) g
    WHERE t.term = g.term AND t.collection_id = g.collection_id;
    DELETE FROM retrieval_term t
    USING (SELECT DISTINCT u.lexeme AS term, o.collection_id FROM old_chunks o, unnest(o.search_vector) u) g
    WHERE t.term = g.term AND t.collection_id = g.collection_id AND t.df <= 0;
    RETURN NULL;
END $$;

CREATE FUNCTION retrieval_terms_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE retrieval_term;
    RETURN NULL;
END $$;

CREATE TRIGGER chunk_indexed_terms AFTER INSERT ON retrieval_chunk
    REFERENCING NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION retrieval_terms_counted();
CREATE TRIGGER chunk_unindexed_terms AFTER DELETE ON retrieval_chunk
    REFERENCING OLD TABLE AS old_chunks FOR EACH STATEMENT EXECUTE FUNCTION retrieval_terms_uncounted();
CREATE TRIGGER chunk_truncated_terms AFTER TRUNCATE ON retrieval_chunk
    FOR EACH STATEMENT EXECUTE FUNCTION retrieval_terms_truncated();
"""

REVERSE = """
DROP TRIGGER chunk_truncated_terms ON retrieval_chunk;
DROP TRIGGER chunk_unindexed_terms ON retrieval_chunk;
DROP TRIGGER chunk_indexed_terms ON retrieval_chunk;
DROP FUNCTION retrieval_terms_truncated();
DROP FUNCTION retrieval_terms_uncounted();
DROP FUNCTION retrieval_terms_counted();
DROP TABLE retrieval_term;
"""


class Migration(migrations.Migration):
    dependencies = [("retrieval", "0002_postings")]

    operations = [migrations.RunSQL(SQL, reverse_sql=REVERSE)]
