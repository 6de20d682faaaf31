"""Chinese, Japanese and Korean text is keyed as overlapping pairs of characters.

PostgreSQL's parser has no word breaker for these scripts: a run of Han or kana between two
punctuation marks ("检索增强生成是一种技术") was one lexeme, so a query for a word inside it ("检索")
found nothing. Pairs of characters are what Lucene's CJK analyzer indexes: a two-character word is
one pair, a longer one the pairs it is made of, and BM25 sums them like the words of any other
query. A lone character is kept as itself. The rest of the text is read as before, in the
collection's language; text without these scripts gets the same keyword vector as before, so only
chunks holding them are keyed again here (and their collections' postings rebuilt).
"""

from django.db import migrations

# Han (and its extensions and compatibility forms), hiragana, katakana (and its phonetic
# extensions and half-width forms), Hangul syllables and jamo.
CJK = (
    r"\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f"
)

FUNCTION = rf"""
CREATE OR REPLACE FUNCTION docent_keywords(body text, config regconfig) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN body !~ '[{CJK}]' THEN to_tsvector(config, body) ELSE
        to_tsvector(config, regexp_replace(body, '[{CJK}]+', ' ', 'g')) || (
            SELECT string_agg(p.pair || ':' || least(p.n, 16383), ' ')::tsvector FROM (
                SELECT substr(r.m[1], i, 2) AS pair, row_number() OVER () AS n
                FROM regexp_matches(body, '([{CJK}]+)', 'g') AS r(m),
                     generate_series(1, greatest(length(r.m[1]) - 1, 1)) AS i
            ) p
        )
    END || coalesce((
        SELECT string_agg(lower(m[1]) || ':' || least(n, 16383), ' ')::tsvector
        FROM regexp_matches(body, '([A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+)', 'g') WITH ORDINALITY AS r(m, n)
    ), ''::tsvector)
$$;
"""

# 0018's two-argument body, restored on the way back.
PREVIOUS = r"""
CREATE OR REPLACE FUNCTION docent_keywords(body text, config regconfig) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector(config, body) || coalesce((
        SELECT string_agg(lower(m[1]) || ':' || least(n, 16383), ' ')::tsvector
        FROM regexp_matches(body, '([A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+)', 'g') WITH ORDINALITY AS r(m, n)
    ), ''::tsvector)
$$;
"""

# Chunks holding these scripts keyed again in their collection's language; the postings and term
# statistics of those collections rebuilt from the keyword vectors (nothing to do when none has any).
REKEY = rf"""
DO $$
DECLARE
    touched bigint[];
BEGIN
    WITH changed AS (
        UPDATE retrieval_chunk ch
        SET search_vector = v.tsv,
            term_count = (SELECT coalesce(sum(array_length(u.positions, 1)), 0) FROM unnest(v.tsv) u)
        FROM (SELECT x.id, docent_keywords(x.heading_path || ' ' || x.text, c.indexed_language::regconfig) AS tsv
              FROM retrieval_chunk x JOIN retrieval_collection c ON c.id = x.collection_id
              WHERE x.heading_path || ' ' || x.text ~ '[{CJK}]') v
        WHERE ch.id = v.id
        RETURNING ch.collection_id
    )
    SELECT array_agg(DISTINCT collection_id) INTO touched FROM changed;
    IF touched IS NOT NULL THEN
        DELETE FROM retrieval_posting WHERE collection_id = ANY(touched);
        DELETE FROM retrieval_term WHERE collection_id = ANY(touched);
        INSERT INTO retrieval_posting (term_hash, collection_id, chunk_id, tf, dl)
        SELECT hashtextextended(u.lexeme, 0), ch.collection_id, ch.id, array_length(u.positions, 1), ch.term_count
        FROM retrieval_chunk ch, unnest(ch.search_vector) u WHERE ch.collection_id = ANY(touched);
        INSERT INTO retrieval_term (term, collection_id, df)
        SELECT u.lexeme, ch.collection_id, count(*) FROM retrieval_chunk ch, unnest(ch.search_vector) u
        WHERE ch.collection_id = ANY(touched) GROUP BY 1, 2;
        UPDATE retrieval_collection c
        SET indexed_terms = (SELECT coalesce(sum(ch.term_count), 0) FROM retrieval_chunk ch WHERE ch.collection_id = c.id)
        WHERE c.id = ANY(touched);
    END IF;
END $$;
"""


class Migration(migrations.Migration):
    # VACUUM cannot run in a transaction; a rebuild clears the visibility map (see 0004).
    atomic = False
    dependencies = [("retrieval", "0018_collection_language")]

    operations = [
        migrations.RunSQL(FUNCTION, reverse_sql=PREVIOUS),
        migrations.RunSQL(REKEY, reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL(
            "VACUUM ANALYZE retrieval_posting, retrieval_term", reverse_sql=migrations.RunSQL.noop
        ),
    ]
