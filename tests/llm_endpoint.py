"""Real HTTP servers on 127.0.0.1 for tests of the LLM path (no mocks of the client).

- :class:`LoopbackServer` serves every POST with ``respond(path, headers, body) -> (status,
  payload)`` from a ``ThreadingHTTPServer`` in a daemon thread and keeps every body in ``bodies``.
- :class:`ChatEndpoint` is an OpenAI-compatible chat endpoint on top of it:
  ``answer(request, call_number)`` returns each reply's message content (call numbers start at
  1); usage reports fixed token counts, so budgets can be reasoned about.
- :func:`canned` answers with fixed contents in order.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LoopbackServer", "ChatEndpoint", "canned"]

Respond = Callable[[str, dict[str, str], bytes], tuple[int, bytes]]


class LoopbackServer:
    def __init__(self, respond: Respond) -> None:
        self.bodies: list[bytes] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    outer.bodies.append(body)
                status, payload = respond(self.path, dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ChatEndpoint(LoopbackServer):
    def __init__(
        self, answer: Callable[[dict[str, Any], int], str], *, prompt_tokens: int = 300, completion_tokens: int = 100
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        lock = threading.Lock()

        def respond(path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
            request = json.loads(body)
            with lock:
                self.requests.append(request)
                number = len(self.requests)
            content = answer(request, number)
            return 200, json.dumps(
                {
                    "choices": [{"message": {"content": content}}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
                }
            ).encode()

        super().__init__(respond)


def canned(contents: list[str]) -> Callable[[dict[str, Any], int], str]:
    """Answer with ``contents`` in order, repeating the last one."""
    return lambda request, number: contents[min(number, len(contents)) - 1]
