"""A small fake OpenAI-compatible judge: a real HTTP server on a free loopback port.

It grades by a visible rule (an answer mentioning the Moon gets 1 of 5, any other 5 of 5), and
can be told to fail its first requests (503 / 429 with Retry-After) or to answer garbage.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeJudge:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_first = 0
        self.fail_status = 503
        self.garbage = False
        self.status_always: int | None = None
        self.bodies: list[Any] = []
        """Answer bodies sent (200) before the usual grades, one per request."""
        self._lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with judge._lock:
                    judge.requests.append(body)
                    judge.headers.append({k.lower(): v for k, v in self.headers.items()})
                    n = len(judge.requests)
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": "not found"})
                if judge.status_always is not None:
                    return self._send(judge.status_always, {"error": {"message": "no"}})
                if judge.bodies:
                    with judge._lock:
                        raw = judge.bodies.pop(0)
                    return self._send(200, raw)
                if n <= judge.fail_first:
                    return self._send(judge.fail_status, {"error": "busy"}, {"retry-after": "0"})
                prompt = body["messages"][0]["content"]
                graded = prompt.split("Answer to grade:", 1)[-1]
                score = 1 if "moon" in graded.lower() else 5
                content = (
                    "I think it is fine"
                    if judge.garbage
                    else json.dumps({"score": score, "explanation": f"graded {score}"})
                )
                self._send(
                    200,
                    {
                        "id": "cmpl-1",
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": content}}
                        ],
                        "usage": {
                            "prompt_tokens": 100,
                            "completion_tokens": 20,
                            "total_tokens": 120,
                        },
                    },
                )

            def _send(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeJudge:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
