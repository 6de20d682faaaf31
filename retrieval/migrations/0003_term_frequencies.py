"""Document frequencies per (term, collection), kept by the same chunk triggers as the postings.

A query then reads a few rows per term for BM25's idf instead of counting every posting of every
query term in the readable collections (the first of the two posting scans a search used to make).
Concurrent ingestion into one collection is already serialised by the collection's statistics row,
which the triggers update before these rows.
"""

from importlib import import_module

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

CREATE OR REPLACE FUNCTION retrieval_chunks_indexed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO retrieval_posting (term, collection_id, chunk_id, tf, dl)
    SELECT u.lexeme, n.collection_id, n.id, array_length(u.positions, 1), n.term_count
    FROM new_chunks n, unnest(n.search_vector) u;
    UPDATE retrieval_collection c
    SET indexed_chunks = c.indexed_chunks + x.n, indexed_terms = c.indexed_terms + x.t
    FROM (SELECT collection_id, count(*) AS n, coalesce(sum(term_count), 0) AS t
          FROM new_chunks GROUP BY collection_id) x
    WHERE c.id = x.collection_id;
    INSERT INTO retrieval_term AS t (term, collection_id, df)
    SELECT u.lexeme, n.collection_id, count(*) FROM new_chunks n, unnest(n.search_vector) u
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (term, collection_id) DO UPDATE SET df = t.df + excluded.df;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION retrieval_chunks_unindexed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM retrieval_posting p USING old_chunks o WHERE p.chunk_id = o.id;
    UPDATE retrieval_collection c
    SET indexed_chunks = greatest(c.indexed_chunks - x.n, 0), indexed_terms = greatest(c.indexed_terms - x.t, 0)
    FROM (SELECT collection_id, count(*) AS n, coalesce(sum(term_count), 0) AS t
          FROM old_chunks GROUP BY collection_id) x
    WHERE c.id = x.collection_id;
    UPDATE retrieval_term t SET df = t.df - g.n
    FROM (SELECT u.lexeme AS term, o.collection_id, count(*) AS n FROM old_chunks o, unnest(o.search_vector) u
          GROUP BY 1, 2 ORDER BY 1, 2) g
    WHERE t.term = g.term AND t.collection_id = g.collection_id;
    DELETE FROM retrieval_term t
    USING (SELECT DISTINCT u.lexeme AS term, o.collection_id FROM old_chunks o, unnest(o.search_vector) u) g
    WHERE t.term = g.term AND t.collection_id = g.collection_id AND t.df <= 0;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION retrieval_chunks_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE retrieval_posting;
    TRUNCATE retrieval_term;
    UPDATE retrieval_collection SET indexed_chunks = 0, indexed_terms = 0;
    RETURN NULL;
END $$;
"""

# Back to the functions of 0002, then drop the table they no longer write.
REVERSE = import_module("retrieval.migrations.0002_postings").FUNCTIONS_SQL + "DROP TABLE retrieval_term;"


class Migration(migrations.Migration):
    dependencies = [("retrieval", "0002_postings")]

    operations = [migrations.RunSQL(SQL, reverse_sql=REVERSE)]
