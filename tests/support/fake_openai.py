"""A small OpenAI-compatible server on loopback for tests: chat completions (JSON and SSE),
embeddings, moderations and reranking (the Cohere / Jina format vLLM and llama.cpp serve), with injectable faults (429 + Retry-After, 5xx, stalls, cut streams,
malformed chunks). It records every request so tests can read exactly what the app sent.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler

from .loopback import LoopbackServer


def fake_vector(text: str, dimensions: int) -> list[float]:
    """Deterministic bag-of-words vector: texts sharing words point the same way."""
    vec = [0.0] * dimensions
    for word in text.lower().split():
        h = int(hashlib.md5(word.strip(".,;:!?()[]\"'").encode()).hexdigest(), 16)
        vec[h % dimensions] += 1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _words(text: str) -> set[str]:
    return {w.strip(".,;:!?()[]\"'") for w in text.lower().split()}


def fake_relevance(query: str, text: str) -> float:
    """Deterministic rerank score: the share of the query's words the text holds."""
    asked = _words(query)
    return len(asked & _words(text)) / (len(asked) or 1)


class FakeOpenAI(LoopbackServer):
    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict] = []
        self.faults: deque[dict] = deque()
        self.reply = "This is a fake answer [1]."
        self.token_delay = 0.0
        self.burst = False  # write the whole stream at once (benchmarks)
        self.rerank_favour: str | None = None  # a word whose texts the reranker puts first
        self.lock = threading.Lock()
        self._listen(self._handler(), port)

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults.clear()
            self.reply = "This is a fake answer [1]."
            self.token_delay = 0.0
            self.rerank_favour = None

    def add_fault(self, **fault) -> None:
        """Queue a fault for the next request(s): status=429|500, retry_after=, stall=, cut_after=, malformed=, path="""
        with self.lock:
            self.faults.append(fault)

    def _next_fault(self, path: str) -> dict | None:
        with self.lock:
            for fault in list(self.faults):
                if fault.get("path", path) in path:
                    self.faults.remove(fault)
                    return fault
        return None

    def requests_to(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith(path)]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": "fake-chat", "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake.lock:
                    fake.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                fault = fake._next_fault(self.path)
                if fault and fault.get("status"):
                    headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
                    self._json(
                        fault["status"], {"error": {"message": "injected fault", "type": "fault"}}, headers
                    )
                    return
                if fault and fault.get("stall") and not fault.get("cut_after"):
                    time.sleep(fault["stall"])
                if self.path.endswith("/embeddings"):
                    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    dims = body.get("dimensions") or 384
                    data = [
                        {"object": "embedding", "index": i, "embedding": fake_vector(t, dims)}
                        for i, t in enumerate(inputs)
                    ]
                    self._json(
                        200,
                        {
                            "object": "list",
                            "data": data,
                            "model": body.get("model"),
                            "usage": {
                                "prompt_tokens": sum(len(t.split()) for t in inputs),
                                "total_tokens": 0,
                            },
                        },
                    )
                elif self.path.endswith("/moderations"):
                    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    results = [
                        {
                            "flagged": "FLAGME" in t,
                            "categories": {"harassment": "FLAGME" in t},
                            "category_scores": {"harassment": 0.99 if "FLAGME" in t else 0.0},
                        }
                        for t in inputs
                    ]
                    self._json(200, {"id": "modr-1", "model": "fake-moderation", "results": results})
                elif self.path.endswith("/rerank"):
                    if fault and fault.get("malformed"):
                        self._json(200, {"results": [{"index": 0}]})
                        return
                    favour = fake.rerank_favour
                    tei = "texts" in body  # text-embeddings-inference's format: a bare list
                    scored = [
                        {
                            "index": i,
                            "relevance_score": fake_relevance(body["query"], t)
                            + 2.0 * bool(favour and favour in t),
                        }
                        for i, t in enumerate(body["texts"] if tei else body["documents"])
                    ]
                    scored.sort(key=lambda r: -r["relevance_score"])
                    if tei:
                        self._json(
                            200, [{"index": r["index"], "score": r["relevance_score"]} for r in scored]
                        )
                    else:
                        self._json(200, {"id": "rerank-1", "results": scored[: body.get("top_n") or None]})
                elif self.path.endswith("/chat/completions"):
                    self._chat(body, fault or {})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def _chat(self, body: dict, fault: dict) -> None:
                reply = fake.reply
                words = [w + " " for w in reply.split(" ")]
                words[-1] = words[-1].rstrip()
                prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
                if not body.get("stream"):
                    self._json(
                        200,
                        {
                            "id": "chatcmpl-1",
                            "object": "chat.completion",
                            "created": int(time.time()),
                            "model": body.get("model"),
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": reply},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {
                                "prompt_tokens": prompt_tokens,
                                "completion_tokens": len(words),
                                "total_tokens": prompt_tokens + len(words),
                            },
                        },
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                base = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": body.get("model"),
                }

                def send(obj) -> None:
                    payload = obj if isinstance(obj, str) else json.dumps(obj)
                    self.wfile.write(f"data: {payload}\n\n".encode())
                    self.wfile.flush()

                if fake.burst and not fault:
                    events = [
                        {**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
                        for w in words
                    ]
                    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    payload = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
                    try:
                        self.wfile.write(payload.encode())
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return
                try:
                    send(
                        {
                            **base,
                            "choices": [
                                {
                                    "index": 0,
                                    "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None,
                                }
                            ],
                        }
                    )
                    for i, word in enumerate(words):
                        if fault.get("cut_after") is not None and i >= fault["cut_after"]:
                            if fault.get("stall"):
                                time.sleep(fault["stall"])
                            self.close_connection = True
                            return  # the stream just ends: no finish_reason, no [DONE]
                        if fault.get("malformed_at") is not None and i == fault["malformed_at"]:
                            send("{not json")
                        if fake.token_delay:
                            time.sleep(fake.token_delay)
                        send(
                            {
                                **base,
                                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                            }
                        )
                    send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    if body.get("stream_options", {}).get("include_usage"):
                        send(
                            {
                                **base,
                                "choices": [],
                                "usage": {
                                    "prompt_tokens": prompt_tokens,
                                    "completion_tokens": len(words),
                                    "total_tokens": prompt_tokens + len(words),
                                },
                            }
                        )
                    send("[DONE]")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        return Handler


def main() -> None:
    """Run the fake provider as its own process: python -m tests.support.fake_openai PORT TOKENS."""

    port, tokens = int(sys.argv[1]), int(sys.argv[2])
    fake = FakeOpenAI(port)
    fake.reply = " ".join(f"tok{i}" for i in range(tokens - 1)) + " [1]"
    fake.burst = True
    fake.server.serve_forever()


if __name__ == "__main__":
    main()
