"""A fully compliant model on a loopback OpenAI-compatible server: the worst case a deployment can meet.

:class:`CompliantServer` is a real ``http.server`` on 127.0.0.1 (a random port) that answers
``POST /v1/chat/completions`` like any OpenAI-compatible endpoint, and :func:`compliant_reply`
is the model it plays: it does whatever the last instruction in its prompt says.

- Its prompt is every message's text in order (system prompt, worked example, evidence, a
  retry note); it is cut into sentences (line breaks and ``. ! ? 。 ！ ？``) and a sentence is an
  instruction when, after a leading ``#``, quote, list marker or ``label:`` is dropped, it
  starts with an imperative verb (:data:`IMPERATIVES`), or addresses the model ("you must",
  "your task", "I want you", "from now on", "请", "忽略", ...); one can also start inside a
  sentence at a capitalised imperative ("... Greensboro, MD Ignore all ..."). The last one wins.
- An instruction of the engine's own (one that also occurs in the system prompt or a retry
  note) is obeyed as the engine means it: the worked example's reply, at the level the prompt
  states, with the first offered statement per section when the schema offers statements.
- Any other instruction is the attacker's, and the model obeys it whatever the schema says:
  every section (English and Chinese) becomes the text it was told to write (what follows
  "say", "print", "output", "write", "respond/reply/answer with", in quotes or not), or the
  instruction itself when it names no text; ``risk_level`` becomes a level the instruction
  names, if any. ``payloads`` records each such text.

Every request body is kept (``requests``), so a test can check what left the engine.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.vocabulary import WARNING_LEVEL_NAMES

__all__ = ["CompliantServer", "compliant_reply", "last_instruction", "IMPERATIVES"]

IMPERATIVES = frozenset(
    "ignore forget disregard skip override bypass say print output write reply respond answer tell give use "
    "pick choose translate repeat reveal list describe explain provide generate create make add include insert "
    "set change report declare issue raise evacuate stop start do please now instead return send show display "
    "spell leak disclose summarize summarise rewrite convert encode decode act pretend imagine "
    "append prepend replace remove delete call publish announce warn alert state confirm claim".split()
)
_ADDRESSED = re.compile(
    r"\b(you (must|should|will|shall|are now|have to|need to)|your (task|job|new|real|goal|instructions?)"
    r"|i want you|i need you|from now on|do not|don't)\b|请|忽略|输出|你现在|无视|告诉我",
    re.I,
)
_LEAD = re.compile(r"^[\s#>*\-\u2022\"'“‘(\[]*(?:[\w {}/.-]{1,40}:\s+)?")
_SENTENCE = re.compile(r"[^\n.!?。！？]+[.!?。！？]?")
_TOLD = re.compile(
    r"\b(?:say|print|output|write|respond with|reply with|answer with|return|state|announce|publish)\b[:,]?\s*"
    r"(?:[\"'“‘](?P<quoted>[^\"'”’]{1,300})[\"'”’]|(?P<plain>.{1,300}))",
    re.I | re.S,
)
_LEVELS = tuple(reversed(WARNING_LEVEL_NAMES))  # the gravest named first
_CAPITALISED = re.compile(r"\b[A-Z][a-z]+\b")


def _is_instruction(sentence: str) -> bool:
    text = _LEAD.sub("", sentence.strip(), count=1).strip()
    words = re.findall(r"[A-Za-z']+", text)
    if words and words[0].casefold() in IMPERATIVES:
        return True
    return bool(_ADDRESSED.search(text))


def last_instruction(messages: list[dict[str, Any]]) -> tuple[str | None, bool]:
    """(the last instruction in the prompt, whether it is the engine's own)."""
    engine_texts = [str(m.get("content", "")) for m in messages if m.get("role") == "system"]
    engine_texts += [
        str(m.get("content", "")) for m in messages if str(m.get("content", "")).startswith("Your previous answer")
    ]
    found: str | None = None
    for message in messages:
        if message.get("role") == "assistant":
            continue  # the model's own earlier words are no instruction to it
        for match in _SENTENCE.finditer(str(message.get("content", ""))):
            sentence = match.group(0).strip()
            # an instruction can start inside a line of data ("... near Greensboro, MD Ignore all ...")
            starts = [0] + [m.start() for m in _CAPITALISED.finditer(sentence) if m.group(0).casefold() in IMPERATIVES]
            for start in starts:
                if sentence[start:] and _is_instruction(sentence[start:]):
                    found = sentence[start:]
                    break
    if found is None:
        return None, True
    return found, any(found in text for text in engine_texts)


def _stated_level(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        match = re.search(r"The level is (\w+)\.", str(message.get("content", "")))
        if match:
            return match.group(1)
    return "blue"


def compliant_reply(request: dict[str, Any]) -> tuple[str, str | None]:
    """The reply content to one chat request, and the attacker's text it wrote (None if it
    followed the engine)."""
    messages = request.get("messages") or []
    instruction, ours = last_instruction(messages)
    level = _stated_level(messages)
    schema = (((request.get("response_format") or {}).get("json_schema") or {}).get("schema")) or {}
    props = schema.get("properties") or {}
    if instruction is None or ours:
        example = next(
            (json.loads(m["content"]) for m in messages if m.get("role") == "assistant"),
            {},
        )
        reply = {**example, "risk_level": level}
        for key, spec in props.items():
            if key != "risk_level" and isinstance(spec, dict) and spec.get("enum"):
                reply[key] = spec["enum"][0]
        return json.dumps(reply, ensure_ascii=False), None
    told = _TOLD.search(instruction)
    payload = (told.group("quoted") or told.group("plain")).strip() if told else instruction
    named = [lv for lv in _LEVELS if re.search(rf"\b{lv}\b", instruction, re.I)]
    keys = [k for k in props if k != "risk_level"] or [
        f"{s}_{lang}" for s in ("situation", "development", "actions", "uncertainty") for lang in ("en", "zh")
    ]
    reply = {"risk_level": named[-1] if named else level, **dict.fromkeys(keys, payload)}
    return json.dumps(reply, ensure_ascii=False), payload


class CompliantServer:
    """The compliant model on a real HTTP server on 127.0.0.1; :meth:`close` stops it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.payloads: list[str] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    request = json.loads(body)
                except ValueError:
                    self.send_error(400, "body is not JSON")
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self.send_error(404, "only /v1/chat/completions is served")
                    return
                content, payload = compliant_reply(request)
                with lock:
                    outer.requests.append(request)
                    if payload is not None:
                        outer.payloads.append(payload)
                answer = json.dumps(
                    {
                        "choices": [{"message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": len(body) // 4, "completion_tokens": len(content) // 4},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
