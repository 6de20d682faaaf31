"""A collection's language for keyword search (PostgreSQL's text search configuration of that name).

`docent_keywords(body, config)` is the analyzer in a given language (the one-argument form stays, in
English, which every collection so far was indexed in); the insert path reads each chunk's
collection's language, the query side reads the query in each language of the readable collections.
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('retrieval', '0017_document_kind_code'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunSQL(
            r"""
CREATE OR REPLACE FUNCTION docent_keywords(body text, config regconfig) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector(config, body) || coalesce((
        SELECT string_agg(lower(m[1]) || ':' || least(n, 16383), ' ')::tsvector
        FROM regexp_matches(body, '([A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+)', 'g') WITH ORDINALITY AS r(m, n)
    ), ''::tsvector)
$$;
CREATE OR REPLACE FUNCTION docent_keywords(body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT docent_keywords(body, 'english'::regconfig) $$;
""",
            reverse_sql=r"""
CREATE OR REPLACE FUNCTION docent_keywords(body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector('english'::regconfig, body) || coalesce((
        SELECT string_agg(lower(m[1]) || ':' || least(n, 16383), ' ')::tsvector
        FROM regexp_matches(body, '([A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+)', 'g') WITH ORDINALITY AS r(m, n)
    ), ''::tsvector)
$$;
DROP FUNCTION docent_keywords(text, regconfig);
""",
        ),
        migrations.AddField(
            model_name='collection',
            name='indexed_language',
            field=models.CharField(default='english', editable=False, max_length=20),
        ),
        migrations.AddField(
            model_name='collection',
            name='language',
            field=models.CharField(choices=[('arabic', 'Arabic'), ('armenian', 'Armenian'), ('basque', 'Basque'), ('catalan', 'Catalan'), ('danish', 'Danish'), ('dutch', 'Dutch'), ('english', 'English'), ('finnish', 'Finnish'), ('french', 'French'), ('german', 'German'), ('greek', 'Greek'), ('hindi', 'Hindi'), ('hungarian', 'Hungarian'), ('indonesian', 'Indonesian'), ('irish', 'Irish'), ('italian', 'Italian'), ('lithuanian', 'Lithuanian'), ('nepali', 'Nepali'), ('norwegian', 'Norwegian'), ('portuguese', 'Portuguese'), ('romanian', 'Romanian'), ('russian', 'Russian'), ('serbian', 'Serbian'), ('simple', 'Simple'), ('spanish', 'Spanish'), ('swedish', 'Swedish'), ('tamil', 'Tamil'), ('turkish', 'Turkish'), ('yiddish', 'Yiddish')], default='english', help_text='For keyword search: how words are stemmed and which are stop words.', max_length=20),
        ),
        migrations.AddConstraint(
            model_name='collection',
            constraint=models.CheckConstraint(condition=models.Q(('indexed_language__in', ('arabic', 'armenian', 'basque', 'catalan', 'danish', 'dutch', 'english', 'finnish', 'french', 'german', 'greek', 'hindi', 'hungarian', 'indonesian', 'irish', 'italian', 'lithuanian', 'nepali', 'norwegian', 'portuguese', 'romanian', 'russian', 'serbian', 'simple', 'spanish', 'swedish', 'tamil', 'turkish', 'yiddish')), ('language__in', ('arabic', 'armenian', 'basque', 'catalan', 'danish', 'dutch', 'english', 'finnish', 'french', 'german', 'greek', 'hindi', 'hungarian', 'indonesian', 'irish', 'italian', 'lithuanian', 'nepali', 'norwegian', 'portuguese', 'romanian', 'russian', 'serbian', 'simple', 'spanish', 'swedish', 'tamil', 'turkish', 'yiddish'))), name='collection_language_known'),
        ),
    ]
