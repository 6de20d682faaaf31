"""The BM25 inverted index: one row per (term, chunk), kept beside the chunks in PostgreSQL.

Deleting a chunk removes its postings through the foreign key, inside the same transaction. The
covering index serves both the document-frequency count and the scoring scan of a query term
without touching the heap.
"""

from django.db import migrations

SQL = """
CREATE TABLE retrieval_posting (
    term text NOT NULL,
    collection_id bigint NOT NULL,
    chunk_id bigint NOT NULL REFERENCES retrieval_chunk (id) ON DELETE CASCADE,
    tf smallint NOT NULL,
    dl integer NOT NULL
);
CREATE INDEX posting_term_collection ON retrieval_posting (term, collection_id) INCLUDE (chunk_id, tf, dl);
CREATE INDEX posting_chunk ON retrieval_posting (chunk_id);
"""


class Migration(migrations.Migration):
    dependencies = [("retrieval", "0001_initial")]

    operations = [migrations.RunSQL(SQL, reverse_sql="DROP TABLE retrieval_posting;")]
