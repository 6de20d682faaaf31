"""Keyword vectors also hold each snake_case identifier whole (`asn1_read_value`, `DOCENT_RATE_UPLOAD`).

PostgreSQL's parser splits a word at underscores, so a question naming `asn1_read_value` matched
`asn1_read_value_type` and every passage with "read" and "value" as well; with the identifier as a
lexeme of its own (beside its parts), the passage naming it exactly scores its rare term. Dotted
names and paths (`manage.py`, `assistant.settings.production`) are single tokens already.

`docent_keywords(text)` is the one analyzer: the insert path and the query side both call it.
Chunks written before are given the new lexemes here, and the postings and statistics are rebuilt
when any changed (nothing to do on a new database).
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION docent_keywords(body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector('english'::regconfig, body) || coalesce((
        SELECT string_agg(lower(m[1]) || ':' || least(n, 16383), ' ')::tsvector
        FROM regexp_matches(body, '([A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+)', 'g') WITH ORDINALITY AS r(m, n)
    ), ''::tsvector)
$$;
"""

REKEY = r"""
DO $$
BEGIN
    UPDATE retrieval_chunk ch
    SET search_vector = v.tsv,
        term_count = (SELECT coalesce(sum(array_length(u.positions, 1)), 0) FROM unnest(v.tsv) u)
    FROM (SELECT id, docent_keywords(heading_path || ' ' || text) AS tsv FROM retrieval_chunk
          WHERE heading_path || ' ' || text ~ '[A-Za-z][A-Za-z0-9]*_+[A-Za-z0-9]') v
    WHERE ch.id = v.id;
    IF FOUND THEN
        TRUNCATE retrieval_posting, retrieval_term;
        INSERT INTO retrieval_posting (term_hash, collection_id, chunk_id, tf, dl)
        SELECT hashtextextended(u.lexeme, 0), ch.collection_id, ch.id, array_length(u.positions, 1), ch.term_count
        FROM retrieval_chunk ch, unnest(ch.search_vector) u;
        INSERT INTO retrieval_term (term, collection_id, df)
        SELECT u.lexeme, ch.collection_id, count(*) FROM retrieval_chunk ch, unnest(ch.search_vector) u GROUP BY 1, 2;
        UPDATE retrieval_collection c
        SET indexed_chunks = (SELECT count(*) FROM retrieval_chunk ch WHERE ch.collection_id = c.id),
            indexed_terms = (SELECT coalesce(sum(ch.term_count), 0) FROM retrieval_chunk ch WHERE ch.collection_id = c.id);
    END IF;
END $$;
"""


class Migration(migrations.Migration):
    # VACUUM cannot run in a transaction; a rebuild clears the visibility map (see 0004).
    atomic = False
    dependencies = [("retrieval", "0013_team_deleted_at")]

    operations = [
        migrations.RunSQL(FUNCTION, reverse_sql="DROP FUNCTION docent_keywords(text)"),
        migrations.RunSQL(REKEY, reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL("VACUUM ANALYZE retrieval_posting, retrieval_term", reverse_sql=migrations.RunSQL.noop),
    ]
