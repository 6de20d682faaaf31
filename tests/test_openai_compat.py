"""/v1 with the official openai client against the real server process."""

import openai
import pytest
from django.test import Client

from retrieval import services
from retrieval.tests.helpers import upload

HANDBOOK = b"# Handbook\n\n## Leave\n\nEmployees get 25 days of paid annual leave per year.\n"


@pytest.fixture
def keyed(make_user, make_team, make_collection):
    user = make_user("olive")
    collection = make_collection(make_team("Ops", members=[user]), "handbook")
    document, _ = upload(collection, "handbook.md", HANDBOOK, enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    return services.api_key_create(user=user)[1], collection


@pytest.mark.slow
def test_official_client_plain_and_streamed(live_url, keyed):
    key, collection = keyed
    client = openai.OpenAI(base_url=f"{live_url}/v1", api_key=key, max_retries=0)
    assert "docent" in [m.id for m in client.models.list().data]
    question = [{"role": "user", "content": "How many days of paid leave do employees get?"}]
    response = client.chat.completions.create(model="docent", messages=question)
    text = response.choices[0].message.content
    assert "25 days" in text and "[1]" in text and response.choices[0].finish_reason == "stop"
    sources = response.model_extra["sources"]
    assert sources[0]["n"] == 1 and "25 days" in sources[0]["text"]
    assert response.model_extra["docent"]["checks"] == []  # a quote holds its own figures
    assert response.usage.prompt_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="docent", messages=question, stream=True, extra_body={"collections": [collection.id]}
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    # Empty lists narrow nothing (every readable collection), as in the chat.
    unnarrowed = client.chat.completions.create(
        model="docent", messages=question, extra_body={"collections": [], "documents": []}
    )
    assert unnarrowed.choices[0].message.content == text
    assert chunks[-1].model_extra["sources"] == sources
    # The collection's own model, streamed: every chunk names it.
    model = next(m.id for m in client.models.list().data if m.id.startswith(f"docent/{collection.id}-"))
    chunks = list(client.chat.completions.create(model=model, messages=question, stream=True))
    assert {c.model for c in chunks} == {model}
    assert client.models.retrieve(model).id == model
    assert client.models.retrieve("docent").id == "docent"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("docent/999999-nothing")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text


def test_v1_errors(db, client, keyed, collection_b):
    key, _ = keyed
    assert Client().get("/v1/models").status_code == 401
    assert Client().get("/v1/models").json()["error"]["code"] == "invalid_api_key"
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    bad = client.post("/v1/chat/completions", {"messages": []}, content_type="application/json", **auth)
    assert bad.status_code == 400 and set(bad.json()["error"]) >= {"message", "code"}
    question = [{"role": "user", "content": "x"}]
    for body, code in (
        ("not json", "invalid_json"),
        ([question], "invalid_json"),
        ({"messages": question, "n": 2}, "invalid_n"),
        ({"messages": ["hello", *question]}, "invalid_messages"),
        ({"messages": question, "collections": [[1]]}, "invalid_collections"),
        ({"messages": question, "collections": "all"}, "invalid_collections"),
    ):
        refused = client.post("/v1/chat/completions", body, content_type="application/json", **auth)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == code
    for field, value in (
        ("stream_options", "usage"),
        ("stream", "yes"),
        ("model", 5),
        ("max_tokens", "many"),
        ("max_tokens", 0),
        ("max_completion_tokens", True),
    ):
        refused = client.post(
            "/v1/chat/completions",
            {"messages": question, field: value},
            content_type="application/json",
            **auth,
        )
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_type"
        assert refused.json()["error"]["param"] == field
    # Content parts that are not text, or whose text is not a string, are left out.
    parts = [
        {"role": "user", "content": [{"type": "text", "text": 5}, {"type": "image_url", "image_url": {}}]}
    ]
    empty = client.post("/v1/chat/completions", {"messages": parts}, content_type="application/json", **auth)
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "invalid_messages"
    foreign = client.post(
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "collections": [collection_b.id]},
        content_type="application/json",
        **auth,
    )
    assert foreign.status_code == 404


def test_each_readable_collection_is_a_model(
    transactional_db, client, keyed, make_collection, make_team, collection_b
):
    """A client's model picker chooses the knowledge base: `docent` searches every readable collection,
    `docent/<id>-...` one of them; another team's collection is neither listed nor usable."""
    key, handbook = keyed
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    policies = make_collection(handbook.team, "policies")
    document, _ = upload(
        policies, "travel.md", b"# Travel\n\nTrain travel is booked in second class.\n", enqueue=False
    )
    services.documents_ingest(document_ids=[document.id])
    listed = client.get("/v1/models", **auth).json()["data"]
    ids = [m["id"] for m in listed]
    assert ids[0] == "docent"
    handbook_model = f"docent/{handbook.id}-ops-handbook"
    assert set(ids[1:]) == {handbook_model, f"docent/{policies.id}-ops-policies"}
    assert not any(str(collection_b.id) == i.split("/")[-1].split("-")[0] for i in ids[1:])

    def ask(model, question, **extra):
        messages = [{"role": "user", "content": question}]
        return client.post(
            "/v1/chat/completions",
            {"model": model, "messages": messages, **extra},
            content_type="application/json",
            **auth,
        )

    everywhere = ask("docent", "In which class is train travel booked?").json()
    assert everywhere["model"] == "docent"
    assert {s["document_id"] for s in everywhere["sources"]} == {document.id}
    narrowed = ask(handbook_model, "In which class is train travel booked?").json()
    assert narrowed["model"] == handbook_model
    assert document.id not in {s["document_id"] for s in narrowed["sources"]}
    # The number decides: a renamed collection's old model id still works.
    assert ask(f"docent/{policies.id}-old-name", "In which class is train travel booked?").status_code == 200
    foreign = ask(f"docent/{collection_b.id}-x", "anything")
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "model_not_found"
    assert ask("docent/nonsense", "anything").status_code == 404
    both = ask(handbook_model, "anything", collections=[policies.id])
    assert both.status_code == 400
    assert ask("gpt-4o", "In which class is train travel booked?").json()["model"] == "docent"

    # Shared with the caller's team, another team's collection is a model of its own and is searched.
    secret, _ = upload(
        collection_b, "vault.md", b"# Vault\n\nThe vault code rotates monthly.\n", enqueue=False
    )
    services.documents_ingest(document_ids=[secret.id])
    services.collection_share(collection=collection_b, teams=[handbook.team_id])
    shared_model = f"docent/{collection_b.id}-team-b-secrets"
    assert shared_model in [m["id"] for m in client.get("/v1/models", **auth).json()["data"]]
    answer = ask(shared_model, "How often does the vault code rotate?").json()
    assert {s["document_id"] for s in answer["sources"]} == {secret.id}
    assert secret.id in {
        s["document_id"] for s in ask("docent", "How often does the vault code rotate?").json()["sources"]
    }


@pytest.mark.slow
def test_a_collections_instructions_reach_the_model_with_its_passages(
    provider_url, keyed, fake_openai, make_collection
):
    """Set by the team's admin (members may not), a collection's instructions go into the system
    message of answers drawn from it; another collection's do not."""
    from retrieval.models import Membership

    key, collection = keyed
    other = make_collection(collection.team, "unrelated")
    services.collection_update(collection=other, instructions="Always mention the canteen.")
    client = Client()
    client.force_login(collection.team.members.get())
    patch = lambda body: client.patch(  # noqa: E731
        f"/api/v1/collections/{collection.id}", body, content_type="application/json"
    )
    assert patch({"instructions": "Answer in German."}).status_code == 403  # a member, not an admin
    Membership.objects.filter(team=collection.team).update(role="admin")
    assert patch({"instructions": "x" * 2001}).status_code == 400
    response = patch({"instructions": "  Answer in German.  "})
    assert response.status_code == 200 and response.json()["instructions"] == "Answer in German."

    openai_client = openai.OpenAI(base_url=f"{provider_url}/v1", api_key=key, max_retries=0)
    question = [{"role": "user", "content": "How many days of paid leave do employees get?"}]
    openai_client.chat.completions.create(model="docent", messages=question)
    system = fake_openai.requests_to("/chat/completions")[-1]["body"]["messages"][0]["content"]
    assert 'collection "handbook": Answer in German.' in system
    assert "canteen" not in system
