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
    assert response.usage.prompt_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="docent", messages=question, stream=True, extra_body={"collections": [collection.id]}
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert chunks[-1].model_extra["sources"] == sources


def test_v1_errors(db, client, keyed, collection_b):
    key, _ = keyed
    assert Client().get("/v1/models").status_code == 401
    assert Client().get("/v1/models").json()["error"]["code"] == "invalid_api_key"
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    bad = client.post("/v1/chat/completions", {"messages": []}, content_type="application/json", **auth)
    assert bad.status_code == 400 and set(bad.json()["error"]) >= {"message", "code"}
    foreign = client.post(
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "collections": [collection_b.id]},
        content_type="application/json",
        **auth,
    )
    assert foreign.status_code == 404
