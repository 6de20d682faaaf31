import httpx
import openai
import pytest

from chat.providers.openai_compat import sse_chunks

URL = "http://127.0.0.1/v1/chat/completions"


async def chunks_of(body: str) -> list[dict]:
    response = httpx.Response(200, content=body.encode(), request=httpx.Request("POST", URL))
    return [chunk async for chunk in sse_chunks(response)]


async def test_sse_chunks_reads_events_until_done():
    body = (
        ": keep-alive\n\n"
        'data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n'
        "event: message\n"
        'data: {"choices": [{"delta": {"content": "lo"},\n'
        'data: "finish_reason": "stop"}]}\n\n'
        "data: [DONE]\n\n"
        'data: {"after": "done"}\n\n'
    )
    chunks = await chunks_of(body)
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["Hel", "lo"]
    assert chunks[1]["choices"][0]["finish_reason"] == "stop"  # data lines of one event are joined


async def test_sse_chunks_refuses_garbage_and_reports_error_events():
    with pytest.raises(ValueError):
        await chunks_of('data: {"choices": [\n\n')
    with pytest.raises(ValueError):
        await chunks_of("data: [1, 2]\n\n")
    with pytest.raises(openai.APIError, match="overloaded"):
        await chunks_of('data: {"error": {"message": "overloaded"}}\n\n')


async def test_sse_chunks_keeps_a_last_event_without_its_blank_line():
    chunks = await chunks_of('data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n')
    assert chunks[0]["choices"][0]["finish_reason"] == "stop"
    assert await chunks_of("data: [DONE]\n") == []
