"""The peer for the stream benchmark: a bare Starlette websocket that relays the provider's stream
token by token, with no retrieval, no storage and no resume. Run with uvicorn."""

import json
import os

import openai
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

client = openai.AsyncOpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="bench", max_retries=0)


async def relay(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        ask = json.loads(await websocket.receive_text())
        stream = await client.chat.completions.create(
            model="bench",
            stream=True,
            max_tokens=2000,
            messages=[{"role": "user", "content": ask["content"]}],
        )
        seq = 0
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    seq += 1
                    await websocket.send_text(
                        json.dumps({"type": "delta", "seq": seq, "text": choice.delta.content})
                    )
        await websocket.send_text(json.dumps({"type": "done", "seq": seq + 1, "finish_reason": "stop"}))


app = Starlette(routes=[WebSocketRoute("/ws", relay)])
