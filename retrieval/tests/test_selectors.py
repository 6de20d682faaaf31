import math

import numpy as np
import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval import cjk, selectors, services
from retrieval.models import Chunk, Collection, Document
from retrieval.selectors import search
from tests.support.chunks import random_unit_vectors, write_chunks

from .helpers import upload


def ingest(collection, name: str, text: str) -> Document:
    document, _ = upload(collection, name, text.encode(), enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    document.refresh_from_db()
    assert document.status == "ready", document.error
    return document


def test_bm25_matches_hand_computation(alice, collection_a, settings):
    """Okapi BM25 with k1=1.2, b=0.75 on three one-line documents, computed by hand."""
    settings.DOCENT_BM25_K1, settings.DOCENT_BM25_B = 1.2, 0.75
    d1 = ingest(collection_a, "d1.txt", "apple banana apple")  # lexemes appl:2 banana:1, dl=3
    d2 = ingest(collection_a, "d2.txt", "banana cherry")  # banana:1 cherri:1, dl=2
    d3 = ingest(collection_a, "d3.txt", "cherry date elderberry fig")  # dl=4
    n, avgdl, k1, b = 3, 3.0, 1.2, 0.75

    def idf(df):
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def part(tf, dl, df):
        return idf(df) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))

    expected = {d1.id: part(2, 3, 1), d2.id: part(1, 2, 2), d3.id: part(1, 4, 2)}
    hits = search(user=collection_a.team.members.get(), query="apples and cherries", mode="keyword", k=10)
    assert [h.document_id for h in hits] == [d1.id, d2.id, d3.id]
    for hit in hits:
        assert hit.bm25 == pytest.approx(expected[hit.document_id], rel=1e-6)
    assert round(expected[d1.id], 5) == 1.34864 and round(expected[d3.id], 4) == 0.4136  # by hand


def test_a_snake_case_name_finds_the_passage_naming_it_exactly(alice, collection_a):
    """PostgreSQL splits `asn1_read_value` at its underscores; kept whole beside its parts, the name
    ranks the passage about it above one about `asn1_read_value_type` that repeats the parts."""
    exact = ingest(collection_a, "read.txt", "asn1_read_value returns the value of one element.")
    longer = ingest(
        collection_a,
        "type.txt",
        "asn1_read_value_type reads the value and the type: read value, read type, value of the type.",
    )
    hits = search(user=alice, query="What does asn1_read_value do?", mode="keyword", k=10)
    assert [h.document_id for h in hits] == [exact.id, longer.id]
    assert "asn1_read_value" in selectors.query_terms(query="What does asn1_read_value do?")
    # Setting names too; the parts still match on their own.
    setting = ingest(collection_a, "env.txt", "DOCENT_RATE_UPLOAD caps uploads per user.")
    assert search(user=alice, query="DOCENT_RATE_UPLOAD", mode="keyword", k=1)[0].document_id == setting.id
    assert setting.id in {h.document_id for h in search(user=alice, query="upload rate", mode="keyword")}


def test_hybrid_is_reciprocal_rank_fusion(alice, collection_a, settings):
    """Hybrid order is the RRF of the dense and keyword ranks."""
    settings.DOCENT_RRF_K = 60
    texts = {
        "pw.txt": "To reset a forgotten password open Settings and choose Security.",
        "vpn.txt": "The VPN client needs a restart after the password changes.",
        "lunch.txt": "Lunch is served at noon in the cafeteria on the second floor.",
        "keys.txt": "Lost your badge? Security replaces access cards at the front desk.",
    }
    for name, text in texts.items():
        ingest(collection_a, name, text)
    query = "how do I change my password"
    dense = {h.chunk_id: h.dense_rank for h in search(user=alice, query=query, mode="dense", k=10)}
    keyword = {h.chunk_id: h.keyword_rank for h in search(user=alice, query=query, mode="keyword", k=10)}
    fused = search(user=alice, query=query, mode="hybrid", k=10)
    expected = {
        c: (1 / (60 + dense[c]) if c in dense else 0) + (1 / (60 + keyword[c]) if c in keyword else 0)
        for c in set(dense) | set(keyword)
    }
    assert len(keyword) > 1  # every keyword hit is within the floor here (the test below)
    assert [h.chunk_id for h in fused] == sorted(expected, key=lambda c: (-expected[c], c))
    for hit in fused:
        assert hit.score == pytest.approx(expected[hit.chunk_id])


def test_keyword_hits_holding_only_the_commonest_words_are_left_out_of_the_fusion(
    alice, collection_a, settings
):
    """Every page of a manual names its product: asked "Does Acme support SSO?", BM25 ranks the one
    passage naming SSO first and every other page after it on "Acme" alone (a few hundredths of its
    score). Fused by rank, those would still add to the passages the embedder ranks, and push the one
    that answers down; under `DOCENT_KEYWORD_FLOOR` of the best score they do not count."""
    pages = {
        "portal.txt": "Acme staff log in to the Acme portal with their badge number and a PIN.",
        "intranet.txt": "The Acme intranet keeps you logged in for a week on Acme laptops.",
        "vpn.txt": "Signing in to the Acme VPN takes a code from the Acme authenticator app.",
        "mail.txt": "Acme webmail asks for your Acme password again after a day away from the office.",
        "wifi.txt": "The Acme guest network asks for a code from the Acme front desk.",
        "house.txt": (
            "The Acme cafeteria opens at noon and the car park closes at eight. Parking permits are "
            "renewed each January at the front desk, where lost keys are replaced too. Meeting rooms "
            "are booked a week ahead; bins for paper and glass stand by the lifts on every floor. "
            "Single sign-on (SSO) is not supported."
        ),
    }
    docs = {name: ingest(collection_a, name, text) for name, text in pages.items()}
    query = "Does Acme support SSO?"
    keyword = search(user=alice, query=query, mode="keyword", k=10)
    assert keyword[0].document_id == docs["house.txt"].id
    assert len(keyword) == 6 and all(h.bm25 < 0.15 * keyword[0].bm25 for h in keyword[1:])
    settings.DOCENT_KEYWORD_FLOOR = 0.15
    floored = search(user=alice, query=query, mode="hybrid", k=3)
    assert floored[0].document_id == docs["house.txt"].id
    assert [h.keyword_rank for h in floored[1:]] == [None, None]  # ranked by the embedder alone
    settings.DOCENT_KEYWORD_FLOOR = 0.0  # plain RRF: each "Acme" page adds its keyword rank
    assert search(user=alice, query=query, mode="hybrid", k=3)[0].document_id != docs["house.txt"].id


def test_copies_of_a_passage_take_one_place(alice, team_a, make_collection):
    """The same file in several collections (and a version kept beside the next) gives the same
    passage several times: it is returned once, the best-ranked copy, and the next passage takes the
    other place, in every mode and when narrowed to documents; also when the copies fill more than
    the 2k best candidates whose hashes are looked up first."""
    text = "Parental leave is sixteen weeks at full pay, taken within the child's first year."
    collections = [make_collection(team_a, name) for name in ("hr", "all-company", "managers", "archive")]
    copies = [ingest(c, "leave.txt", text) for c in collections]
    other = ingest(collections[1], "sick.txt", "Sick leave needs a doctor's note after three days away.")
    ids = {c.id for c in copies}
    for k, many in ((2, copies[:2]), (2, copies), (3, copies)):
        only = [c.collection_id for c in many] + [other.collection_id]
        for mode in selectors.MODES:
            for narrowed in (None, [d.id for d in many] + [other.id]):
                hits = search(
                    user=alice,
                    query="how long is parental leave",
                    mode=mode,
                    k=k,
                    collection_ids=only,
                    document_ids=narrowed,
                )
                assert [h.document_id in ids for h in hits] == [True, False], (k, len(many), mode, narrowed)
                assert hits[1].document_id == other.id
    # Either copy alone is still found.
    hits = search(user=alice, query="parental leave", collection_ids=[collections[1].id], k=1)
    assert [h.document_id for h in hits] == [copies[1].id]


def test_requested_collections_narrow_the_search(alice, team_a, make_collection):
    one, two = make_collection(team_a, "one"), make_collection(team_a, "two")
    ingest(one, "a.txt", "quarterly revenue report")
    ingest(two, "b.txt", "quarterly revenue forecast")
    for mode in selectors.MODES:
        hits = search(user=alice, query="quarterly revenue", collection_ids=[two.id], mode=mode)
        assert {h.collection_id for h in hits} == {two.id}


def test_requested_documents_narrow_the_search_and_stay_within_the_users_teams(
    alice, team_a, collection_b, make_collection
):
    """Every mode returns only the chosen documents' passages, all of them when k allows (searched
    exactly, whatever the HNSW index would return); a document of another team narrows to nothing."""
    one = make_collection(team_a, "one")
    report = ingest(
        one, "report.md", "\n\n".join(f"## Part {i}\n\nQuarterly revenue note {i}." for i in range(12))
    )
    ingest(one, "forecast.txt", "quarterly revenue forecast")
    secret = ingest(collection_b, "secret.txt", "quarterly revenue secret")
    chunks = set(Chunk.objects.filter(document=report).values_list("id", flat=True))
    for mode in selectors.MODES:
        hits = search(user=alice, query="quarterly revenue", document_ids=[report.id], mode=mode, k=50)
        assert {h.document_id for h in hits} == {report.id}, mode
        if mode != "keyword":
            assert {h.chunk_id for h in hits} == chunks, mode  # complete: every passage of it
        both = search(user=alice, query="quarterly revenue", document_ids=[report.id, secret.id], mode=mode)
        assert {h.document_id for h in both} == {report.id}, mode
        assert search(user=alice, query="quarterly revenue", document_ids=[secret.id], mode=mode) == []


def test_keyword_top_is_global_across_collections(alice, team_a, make_collection):
    """BM25 is aggregated per collection; the best `depth` overall must still be the global best."""
    rng = np.random.default_rng(5)
    collections = [make_collection(team_a, f"c{i}") for i in range(3)]
    for i, collection in enumerate(collections):
        rows = [
            (f"{'zebra ' * (1 + (i + 3 * j) % 7)}grazing in field {i}-{j}", "", v)
            for j, v in enumerate(random_unit_vectors(rng, 6))
        ]
        write_chunks(collection, rows, per_doc=6)
    full = search(user=alice, query="zebra", mode="keyword", k=50, depth=50)
    assert len(full) == 18
    assert [h.bm25 for h in full] == sorted((h.bm25 for h in full), reverse=True)
    top = search(user=alice, query="zebra", mode="keyword", k=4, depth=4)
    assert [h.chunk_id for h in top] == [h.chunk_id for h in full[:4]]
    assert len({h.collection_id for h in top}) > 1


@pytest.fixture
def two_teams(make_user, make_team, make_collection):
    """Three users in overlapping teams, each team with a collection of similar documents."""
    users = [make_user(f"u{i}") for i in range(4)]  # the fourth in no team
    teams = [
        make_team("red", [users[0], users[1]]),
        make_team("blue", [users[1]]),
        make_team("green", [users[2]]),
    ]
    collections = [make_collection(t, f"{t.name}-docs") for t in teams]
    for c in collections:
        for i, topic in enumerate(["holiday leave policy", "expense claims", "server outage runbook"]):
            ingest(c, f"{c.name}-{i}.txt", f"The {c.team.name} team {topic}: details for {topic} number {i}.")
    return users, collections, teams


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    who=st.integers(0, 3),
    words=st.lists(
        st.sampled_from(["leave", "policy", "expense", "outage", "team", "red", "blue", "claims", "xyz"]),
        min_size=1,
        max_size=4,
    ),
    mode=st.sampled_from(selectors.MODES),
    requested=st.one_of(st.none(), st.lists(st.integers(0, 2), max_size=3)),
    documents=st.one_of(st.none(), st.lists(st.integers(0, 8), max_size=3)),
    shares=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), max_size=3),
    everyone=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_no_user_ever_sees_another_teams_chunk(
    two_teams, who, words, mode, requested, documents, shares, everyone
):
    """Property: whatever the query, mode, requested collections or documents, and whichever
    collections are shared with which teams, hits come only from the user's teams' collections and
    those shared with them, and only from what was requested."""
    users, collections, teams = two_teams
    for i, collection in enumerate(collections):
        collection.shared_with.set([teams[t] for c, t in shares if c == i])
        collection.shared_with_all = everyone[i]
        collection.save(update_fields=["shared_with_all"])
    user = users[who]  # u3 is in no team: it reads nothing, not even what every team reads
    mine = {t.id for t in teams if t.members.filter(id=user.id).exists()}
    readable = {
        c.id
        for c in collections
        if c.team_id in mine or {t.id for t in c.shared_with.all()} & mine or (c.shared_with_all and mine)
    }
    assert set(selectors.collection_ids_for_user(user=user)) == readable
    ids = None if requested is None else [collections[i].id for i in requested]
    every = list(Document.objects.order_by("id").values_list("id", flat=True))
    docs = None if documents is None else [every[i] for i in documents]
    hits = search(user=user, query=" ".join(words), collection_ids=ids, document_ids=docs, mode=mode, k=50)
    assert {h.collection_id for h in hits} <= readable
    if ids is None and docs is None and (mode != "keyword" or "team" in words):
        # Every passage matches (dense: all nine are nearest; "team" is in each): all are found.
        assert {h.collection_id for h in hits} == readable
    if ids is not None:
        assert {h.collection_id for h in hits} <= set(ids)
    if docs is not None:
        assert {h.document_id for h in hits} <= set(docs)


def _bulk_chunks(collection: Collection, n: int, rng) -> None:
    """n chunks with random unit vectors through the real write path (no embedding)."""
    vectors = random_unit_vectors(rng, n)
    write_chunks(
        collection, ((f"passage {i} of {collection.name} about widgets", "", vectors[i]) for i in range(n))
    )


@pytest.mark.slow
@pytest.mark.parametrize("exact_max", [10, 1_000_000])
def test_filtered_search_is_complete_at_one_percent(
    alice, bob, collection_a, collection_b, settings, exact_max
):
    """A user whose collections hold 1% of the chunks still gets min(k, accessible) results.

    exact_max=10 forces the HNSW path, with a tiny ef_search, so the exact fill-in must complete it.
    """
    settings.DOCENT_EXACT_SEARCH_MAX = exact_max
    settings.DOCENT_HNSW_EF_SEARCH = 10
    rng = np.random.default_rng(1)
    _bulk_chunks(collection_b, 3000, rng)
    _bulk_chunks(collection_a, 30, rng)
    assert Chunk.objects.filter(collection=collection_a).count() == 30
    for k, expected in [(20, 20), (30, 30), (50, 30)]:
        hits = search(user=alice, query="widgets", mode="dense", k=k, depth=k)
        assert len(hits) == expected
        assert {h.collection_id for h in hits} == {collection_a.id}
    hits = search(user=alice, query="widgets", mode="hybrid", k=25, depth=25)
    assert len(hits) == 25 and {h.collection_id for h in hits} == {collection_a.id}


def _hash(term: str) -> int:
    """A lexeme's key in the postings table."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT hashtextextended(%s, 0)", [term])
        return cursor.fetchone()[0]


def _term_frequencies() -> tuple[dict, dict]:
    """(document frequencies as kept by the triggers, as counted from the postings), by term hash."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT hashtextextended(term, 0), collection_id, df FROM retrieval_term")
        kept = {(t, c): df for t, c, df in cursor.fetchall()}
        cursor.execute("SELECT term_hash, collection_id, count(*) FROM retrieval_posting GROUP BY 1, 2")
        counted = {(t, c): n for t, c, n in cursor.fetchall()}
    return kept, counted


def test_delete_removes_from_both_indexes_and_statistics(alice, collection_a):
    keep = ingest(collection_a, "keep.txt", "solar panels need cleaning twice a year")
    gone = ingest(collection_a, "gone.txt", "solar inverters fail in extreme heat")
    collection_a.refresh_from_db()
    before = (collection_a.indexed_chunks, collection_a.indexed_terms)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM retrieval_posting WHERE chunk_id IN (SELECT id FROM retrieval_chunk WHERE document_id = %s)",
            [gone.id],
        )
        gone_postings = cursor.fetchone()[0]
    assert gone_postings > 0
    services.document_delete(document=gone)
    collection_a.refresh_from_db()
    kept_terms = sum(Chunk.objects.filter(document=keep).values_list("term_count", flat=True))
    assert (collection_a.indexed_chunks, collection_a.indexed_terms) == (keep.chunk_count, kept_terms)
    assert before[0] > collection_a.indexed_chunks
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT chunk_id) FROM retrieval_posting WHERE collection_id = %s",
            [collection_a.id],
        )
        postings, chunks = cursor.fetchone()
    assert chunks == keep.chunk_count
    kept, counted = _term_frequencies()
    assert kept == counted and (_hash("inverter"), collection_a.id) not in kept
    assert kept[(_hash("solar"), collection_a.id)] == 1
    for mode in selectors.MODES:
        assert {h.document_id for h in search(user=alice, query="solar inverters heat", mode=mode)} == {
            keep.id
        }


def test_a_collection_is_searched_in_its_own_language(alice, team_a, make_collection):
    """A German collection's keyword index and queries use German stems ("Haus" finds "Häuser",
    which English stemming keeps apart); one user reading collections in two languages finds each
    collection's words in its own."""
    german = make_collection(team_a, "Handbuch")
    services.collection_update(collection=german, language="german")  # empty: nothing to rebuild
    services.collection_rekey(collection_id=german.id)
    english = make_collection(team_a, "handbook")
    haus = ingest(german, "haus.txt", "Die Häuser am See haben große Gärten.")
    house = ingest(english, "house.txt", "The houses by the lake share one large garden.")
    for query in ("Haus", "Häuser"):
        assert {h.document_id for h in search(user=alice, query=query, mode="keyword")} == {haus.id}
    assert {h.document_id for h in search(user=alice, query="house", mode="keyword")} == {house.id}
    assert [h.language for h in search(user=alice, query="Häuser und houses", k=10)] in (
        ["german", "english"],
        ["english", "german"],
    )
    assert selectors.query_terms(query="Häuser", collection_ids=[german.id]) == ["haus"]
    assert selectors.query_terms(query="Häuser") == ["häuser"]  # English: no German stem


def test_chinese_and_japanese_words_are_found_inside_unspaced_text(alice, collection_a):
    """Text without spaces between words is keyed as pairs of characters: a word inside a sentence
    ("发票", "テキスト") is found, where PostgreSQL's parser would make the whole clause one term."""
    invoices = ingest(
        collection_a, "expenses.txt", "报销差旅费用时，需要在出差结束后三十天内提交发票和审批单。"
    )
    leave = ingest(collection_a, "leave.txt", "员工每年享有十五天带薪年假，未使用的假期最多可以结转五天。")
    japanese = ingest(collection_a, "ja.txt", "日本語のテキストも検索できます。")
    assert [h.document_id for h in search(user=alice, query="发票", mode="keyword")] == [invoices.id]
    assert [h.document_id for h in search(user=alice, query="带薪年假有几天？", mode="keyword")] == [leave.id]
    assert [h.document_id for h in search(user=alice, query="テキスト", mode="keyword")] == [japanese.id]
    assert selectors.query_terms(query="发票 invoices") == ["invoic", "发票"]
    # The offline answerer reads such text in Python as the database does.
    text = "日本語のテキスト、한국어 텍스트と检索增强生成。"
    assert selectors.keyword_terms(text=text, languages=["simple"])["simple"] == set(cjk.split(text)[1])
    with connection.cursor() as cursor:  # each pair counted as often as it occurs, for BM25's tf
        cursor.execute("SELECT docent_keywords('技术技术技术 and technology')::text")
        assert cursor.fetchone()[0] == "'technolog':2 '技术':3,5,7 '术技':4,6"


def test_a_change_of_language_rebuilds_the_collections_keyword_index(
    alice, collection_a, django_capture_on_commit_callbacks, monkeypatch
):
    """Until the task has rebuilt the index, search uses the language the index is in; then the
    new one, with postings and statistics as exact as after an ingestion."""
    from retrieval import tasks

    document = ingest(collection_a, "haus.txt", "Die Häuser am See haben große Gärten.")
    queued = []
    monkeypatch.setattr(tasks.rekey_collection, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        services.collection_update(collection=collection_a, language="german")
    assert queued == [collection_a.id]
    collection_a.refresh_from_db()
    assert (collection_a.language, collection_a.indexed_language) == ("german", "english")
    assert search(user=alice, query="Haus", mode="keyword") == []  # still English: "häuser" only
    assert services.collections_rekey_stuck() == [collection_a.id]  # the sweep would queue it again

    assert services.collection_rekey(collection_id=collection_a.id) is True
    assert services.collection_rekey(collection_id=collection_a.id) is False  # done: nothing to do
    collection_a.refresh_from_db()
    assert collection_a.indexed_language == "german"
    assert [h.document_id for h in search(user=alice, query="Haus", mode="keyword")] == [document.id]
    kept, counted = _term_frequencies()
    assert kept == counted and (_hash("haus"), collection_a.id) in kept
    terms = sum(Chunk.objects.filter(collection=collection_a).values_list("term_count", flat=True))
    assert (collection_a.indexed_chunks, collection_a.indexed_terms) == (document.chunk_count, terms)
    with pytest.raises(ValueError, match="language must be one of"):
        services.collection_update(collection=collection_a, language="klingon")


def test_a_rebuild_already_running_makes_a_second_one_return_at_once(collection_a):
    """The sweep queues a rebuild again every minute until it is done: a second task for the same
    collection returns at once instead of holding a worker while it waits for the table lock."""
    import psycopg

    services.collection_update(collection=collection_a, language="german")
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended('docent-rekey', %s))", [collection_a.id])
        assert services.collection_rekey(collection_id=collection_a.id) is False
    collection_a.refresh_from_db()
    assert collection_a.indexed_language == "english"  # left to the rebuild that holds the lock
    assert services.collection_rekey(collection_id=collection_a.id) is True


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_holds_back_uploads_to_its_own_collection_only(alice, team_a, make_collection, monkeypatch):
    """While a collection's keyword index is rebuilt in its new language, an upload to another
    collection is written at once; one to the same collection waits, and is keyed in the new
    language (not in the old one the rebuild is replacing)."""
    import threading

    import psycopg

    from retrieval import tasks

    german, other = make_collection(team_a, "Handbuch"), make_collection(team_a, "other")
    ingest(german, "garten.txt", "Die Gärten am See sind groß.")
    monkeypatch.setattr(tasks.rekey_collection, "delay", lambda collection_id: None)  # run below instead
    services.collection_update(collection=german, language="german")
    gate = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    gate.execute("SELECT pg_advisory_lock(4242)")  # the rebuild stops mid-way until released
    monkeypatch.setattr(services, "_REKEY_SQL", ["SELECT pg_advisory_lock(4242)", *services._REKEY_SQL])
    results, errors = {}, []

    def run(name, work):
        try:
            results[name] = work()
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    rebuild = threading.Thread(
        target=run, args=("rebuild", lambda: services.collection_rekey(collection_id=german.id))
    )
    rebuild.start()
    try:
        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as probe:
            for _ in range(100):  # until the rebuild waits at the gate, its locks held
                if probe.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()[0]:
                    break
                threading.Event().wait(0.05)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '10s'")  # an upload that waited would fail here
        elsewhere = ingest(other, "house.txt", "The houses by the lake share one garden.")
        assert elsewhere.chunk_count == 1
        upload_same = threading.Thread(
            target=run, args=("same", lambda: ingest(german, "haus.txt", "Die Häuser am See haben Gärten."))
        )
        upload_same.start()
        upload_same.join(1.5)
        assert upload_same.is_alive()  # waiting for the rebuild
    finally:
        gate.execute("SELECT pg_advisory_unlock(4242)")
        gate.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    rebuild.join(30)
    upload_same.join(30)
    assert errors == [] and results["rebuild"] is True
    assert [h.document_id for h in search(user=alice, query="Haus", mode="keyword")] == [results["same"].id]
    kept, counted = _term_frequencies()
    assert kept == counted


def test_a_language_the_database_server_lacks_is_refused(team_a, monkeypatch):
    """PostgreSQL 16 has every configuration named; an older server behind DATABASE_URL lacks some
    (yiddish came with 16), and a collection in one would fail every search: refused in words."""
    assert services._server_has_language("yiddish")  # the embedded server has it
    monkeypatch.setattr(services, "_server_has_language", lambda language: language != "yiddish")
    with pytest.raises(ValueError, match="no text search configuration for yiddish"):
        services.collection_create(team=team_a, name="Yiddish", language="yiddish")


def test_reingest_keeps_statistics_exact(alice, collection_a):
    document = ingest(collection_a, "a.txt", "wind turbines and wind farms")
    collection_a.refresh_from_db()
    before = (collection_a.indexed_chunks, collection_a.indexed_terms)
    services.documents_ingest(document_ids=[document.id], force=True)
    collection_a.refresh_from_db()
    assert (collection_a.indexed_chunks, collection_a.indexed_terms) == before
    kept, counted = _term_frequencies()
    assert kept == counted and kept[(_hash("wind"), collection_a.id)] == 1


def test_reindex_keywords_rebuilds_postings_the_server_cannot_find(alice, collection_a):
    """Postings keyed by another server's term hashes (a dump restored on another architecture)
    are found again after `manage.py reindex --keywords`; statistics come back exact."""
    import io

    from django.core.management import call_command
    from django.db import connection

    document = ingest(collection_a, "a.txt", "geothermal wells heat the valley")
    collection_a.refresh_from_db()
    stats = (collection_a.indexed_chunks, collection_a.indexed_terms)
    kept_before, _ = _term_frequencies()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE retrieval_posting SET term_hash = term_hash # 1")
        cursor.execute("UPDATE retrieval_collection SET indexed_chunks = 0, indexed_terms = 0")
    assert search(user=alice, query="geothermal", mode="keyword") == []
    out = io.StringIO()
    call_command("reindex", "--keywords", stdout=out)
    assert "postings" in out.getvalue()
    assert [h.document_id for h in search(user=alice, query="geothermal", mode="keyword")] == [document.id]
    collection_a.refresh_from_db()
    assert (collection_a.indexed_chunks, collection_a.indexed_terms) == stats
    kept, counted = _term_frequencies()
    assert kept == counted == kept_before


def test_truncating_chunks_clears_the_keyword_statistics(alice, collection_a):
    from django.db import connection

    ingest(collection_a, "a.txt", "tidal power and tidal barrages")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # deferred FK checks would block TRUNCATE
        cursor.execute("TRUNCATE retrieval_chunk")
    assert _term_frequencies() == ({}, {})
    collection_a.refresh_from_db()
    assert (collection_a.indexed_chunks, collection_a.indexed_terms) == (0, 0)


def test_anonymous_and_empty_queries_return_nothing(collection_a, alice):
    from django.contrib.auth.models import AnonymousUser

    ingest(collection_a, "a.txt", "anything at all")
    assert search(user=AnonymousUser(), query="anything") == []
    assert search(user=alice, query="   ") == []


@pytest.mark.parametrize("mode", selectors.MODES)
def test_searches_run_without_jit(alice, collection_a, mode):
    """Every mode turns JIT off on its connection (servers built with LLVM would compile large searches)."""
    raw = services._raw_connection()
    raw.execute("SET jit = on")
    search(user=alice, query="leave policy", mode=mode)
    assert raw.execute("SHOW jit").fetchone()[0] == "off"


class _VersionCursor:
    def __init__(self, version):
        self.version = version

    def execute(self, sql):
        assert "pg_extension" in sql

    def fetchone(self):
        return (self.version,) if self.version else None


@pytest.mark.parametrize(
    "version, iterative",
    [("0.6.2", False), ("0.7.4", False), ("0.8.0", True), ("0.10.1", True), (None, False)],
)
def test_pgvector_iterative_scan_is_detected_by_version(monkeypatch, version, iterative):
    monkeypatch.setattr(selectors, "_SERVER", {})
    assert selectors._pgvector_iterative(_VersionCursor(version)) is iterative


def test_iterative_scan_is_used_only_where_the_server_has_it(alice, collection_a, monkeypatch):
    """The embedded pgvector 0.6.2 is detected as without it, and searches work; taken for a server
    that has it, the search sets hnsw.iterative_scan, which 0.6.2 refuses (its `hnsw.` prefix is
    reserved): the detection is what keeps every search on such a server from failing."""
    import psycopg

    monkeypatch.setattr(selectors, "_SERVER", {})
    search(user=alice, query="leave policy", mode="dense")
    assert selectors._SERVER == {"iterative": False}
    monkeypatch.setitem(selectors._SERVER, "iterative", True)
    with pytest.raises(psycopg.errors.InvalidName, match="hnsw.iterative_scan"):
        search(user=alice, query="leave policy", mode="hybrid")


@pytest.mark.django_db(transaction=True)
async def test_async_search_keeps_the_event_loop_free(alice, collection_a, monkeypatch):
    """The query embedding and the SQL run in a worker thread: a slow embedding leaves the loop
    serving other work, and the same query is embedded once (LRU cache)."""
    import asyncio
    import threading
    import time

    from retrieval.embeddings import get_embedder

    embedder = get_embedder()
    original, calls = type(embedder).embed_query, []

    def slow_embed(self, text):
        calls.append(threading.get_ident())
        time.sleep(0.3)  # a blocking model call
        return original(self, text)

    monkeypatch.setattr(type(embedder), "embed_query", slow_embed)
    selectors._query_vector.cache_clear()
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await selectors.asearch(user=alice, query="a question nobody asked before", mode="hybrid")
    task.cancel()
    assert ticks >= 15  # about 30 while the embedding blocks its thread
    assert calls and calls[0] != threading.get_ident()
    await selectors.asearch(user=alice, query="a question nobody asked before", mode="dense")
    assert len(calls) == 1
    selectors._query_vector.cache_clear()


@pytest.mark.django_db(transaction=True)
def test_concurrent_ingestion_and_deletion_in_one_collection_keep_the_statistics_exact(collection_a):
    """Four writers at once (as four workers would), ingesting and deleting documents that share
    their words: no deadlock, every document ready, and the term statistics and collection totals
    equal to what the chunks themselves hold."""
    import threading

    from django.db import connection

    words = ["solar", "panel", "inverter", "battery", "grid", "roof", "meter", "cable"]
    documents = []
    for i in range(24):
        text = " ".join(words[(i + j) % len(words)] for j in range(40)) + f" note{i}"
        document, _ = upload(collection_a, f"d{i}.txt", text.encode(), enqueue=False)
        documents.append(document.id)
    services.documents_ingest(document_ids=documents[:8])  # some to delete while others arrive
    errors = []

    def writer(n: int) -> None:
        try:
            for k in range(4):
                services.documents_ingest(document_ids=[documents[8 + n * 4 + k]])
                if n < 2:
                    services.document_delete(document=Document.objects.get(id=documents[n * 4 + k]))
        except Exception as exc:  # surfaced below: a thread's error would otherwise vanish
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert Document.objects.filter(status="ready").count() == 16
    kept, counted = _term_frequencies()
    assert kept == counted and kept
    collection_a.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(term_count), 0) FROM retrieval_chunk WHERE collection_id = %s",
            [collection_a.id],
        )
        assert (collection_a.indexed_chunks, collection_a.indexed_terms) == cursor.fetchone()


def test_the_ef_search_hint_counts_the_collections_shared_with_the_user(
    alice, collection_a, collection_b, monkeypatch
):
    """ef_search is raised by how small a share of the chunks the user may read; a collection shared
    with one of the user's teams, or with every team, counts as theirs."""
    Collection.objects.filter(id=collection_a.id).update(indexed_chunks=10)
    Collection.objects.filter(id=collection_b.id).update(indexed_chunks=990)

    def hint():
        monkeypatch.setitem(selectors._SIZES, "at", 0.0)  # read the sizes again
        return selectors._ef_search_hint(alice.id, None, depth=100, default=40)

    assert hint() == 1000  # 1% readable: as high as it goes
    collection_b.shared_with.add(collection_a.team)
    assert hint() == 130  # all of it: the depth with a margin
    collection_b.shared_with.clear()
    Collection.objects.filter(id=collection_b.id).update(shared_with_all=True)
    assert hint() == 130
    assert selectors._ef_search_hint(alice.id, [collection_a.id], depth=100, default=40) == 1000
