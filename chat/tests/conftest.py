import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from assistant.asgi import application
from retrieval import services as retrieval_services
from retrieval.tests.helpers import upload

HANDBOOK = """# Employee handbook

## Leave
Employees get 25 days of paid annual leave per year. Unused leave can be carried over until March.

## Expenses
Travel expenses are reimbursed within 30 days when the receipt is uploaded to the finance portal.

## Security
Laptops must use full-disk encryption. Report a lost laptop to the security desk within one hour.
"""

SECRET = """# Project Falcon
The Falcon launch date is 14 November and the budget is 2.4 million euros.
"""


@pytest.fixture
def chat_model(settings):
    """Clear the cached chat model around a test so settings changes take effect."""
    from chat.providers import get_chat_model

    get_chat_model.cache_clear()
    yield settings
    get_chat_model.cache_clear()


@pytest.fixture
def openai_provider(chat_model, fake_openai):
    chat_model.OPENAI_BASE_URL = fake_openai.base_url
    chat_model.OPENAI_API_KEY = "test-key"
    chat_model.DOCENT_CHAT_MODEL = "fake-chat"
    chat_model.DOCENT_PROVIDER_MAX_RETRIES = 2
    chat_model.DOCENT_RETRY_AFTER_CAP_S = 2
    chat_model.DOCENT_PROVIDER_FIRST_TOKEN_S = 1.5
    chat_model.DOCENT_PROVIDER_TIMEOUT_S = 10
    return fake_openai


@pytest.fixture
def handbook(transactional_db, alice, collection_a):
    document, _ = upload(collection_a, "handbook.md", HANDBOOK.encode(), enqueue=False)
    retrieval_services.documents_ingest(document_ids=[document.id])
    return collection_a


@pytest.fixture
def falcon(transactional_db, bob, collection_b):
    document, _ = upload(collection_b, "falcon.md", SECRET.encode(), enqueue=False)
    retrieval_services.documents_ingest(document_ids=[document.id])
    return collection_b


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def connect(user, origin: bytes = b"http://localhost") -> WebsocketCommunicator:
    cookie = await sync_to_async(session_cookie)(user)
    communicator = WebsocketCommunicator(
        application, "/ws/chat/", headers=[(b"origin", origin), (b"cookie", f"sessionid={cookie}".encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def ask(communicator, content: str, **extra) -> dict:
    frame = {
        "type": "ask",
        "request_id": extra.pop("request_id", str(uuid.uuid4())),
        "conversation_id": None,
        "content": content,
        **extra,
    }
    await communicator.send_json_to(frame)
    return await communicator.receive_json_from(timeout=30)


async def until_done(communicator, wait: float = 30) -> list[dict]:
    events = []
    while True:
        event = await communicator.receive_json_from(timeout=wait)
        events.append(event)
        if event["type"] in ("done", "error"):
            return events


def text_of(events) -> str:
    return "".join(e["text"] for e in events if e["type"] == "delta")


def answered(
    user, request_id: str, question: str, answer: str, conversation_id=None, collection_ids=None, **finish
):
    """The question asked (in a new conversation, or in `conversation_id`) and its answer complete;
    exchange_start's ids."""
    from chat import services

    ids = services.exchange_start(
        user=user,
        conversation_id=conversation_id,
        request_id=request_id,
        content=question,
        collection_ids=collection_ids,
    )
    services.message_finish(
        message_id=ids["message_id"], text=answer, status="complete", finish_reason="stop", **finish
    )
    return ids


def regenerated(user, message_id, request_id: str, answer: str) -> dict:
    """The answer asked again and its new version complete; answer_regenerate's ids."""
    from chat import services

    ids = services.answer_regenerate(user=user, message_id=message_id, request_id=request_id)
    services.message_finish(message_id=ids["message_id"], text=answer, status="complete")
    return ids
