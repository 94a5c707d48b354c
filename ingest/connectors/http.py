"""HTTP for the network connectors: deadlines, retries with backoff, rate limits, and the one
checked decoding step every answer goes through.

Contract of :meth:`HttpClient.get` and :meth:`HttpClient.get_answer`:

- **a deadline per request**: ``[ingest] timeout_seconds`` bounds one whole attempt (connect,
  headers and the complete body), not each socket read: a server that drips one byte every
  half second is cut off when the time is up (a watchdog shuts the socket);
- **a deadline per source run**: :meth:`HttpClient.source_deadline` (``[ingest]
  source_deadline_seconds``) bounds every attempt, backoff and retry of one source together;
  past it the fetch stops with :class:`SourceError`;
- 429, 5xx, timeouts, refused or reset connections and cut bodies (fewer bytes than
  ``Content-Length``) are retried up to ``[ingest] retries`` times, waiting
  ``backoff_seconds * 2**attempt`` (capped at ``max_backoff_seconds``; a ``Retry-After``
  header wins, within the same cap and the source's deadline);
- any other 4xx is not retried: it raises :class:`HttpStatusError` quoting the server's
  answer, with the fix the connector supplies (a 4xx means the request is wrong);
- a 204 returns ``None`` (FDSN's "no data");
- only ``http`` and ``https`` URLs are fetched, and redirects are followed only to ``http`` or
  ``https``: any other scheme (``file:``, ``ftp:``, ...) raises :class:`SourceError`.

:meth:`HttpClient.get_answer` then checks the answer against what the connector declared
(:class:`Expect`: JSON of a given shape, a text table with a known first line, a binary file
with a known signature): an HTML page, a wrong content type, an empty or cut JSON body, or JSON
of the wrong shape raises :class:`AnswerError`, which carries the body so the loader can keep
it in the raw area and record the batch as quarantined (see :mod:`ingest.connectors`).

Only the standard library is used (``urllib``), so nothing here depends on a proxy library.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from core.errors import EWSError
from core.settings import IngestSettings

__all__ = [
    "SourceError",
    "HttpStatusError",
    "AnswerError",
    "Answer",
    "Expect",
    "HttpClient",
    "RateLimiter",
    "build_url",
    "check_answer",
    "object_with_list",
]

_RETRY_FIX = (
    "the source is down or slow: the run is recorded as failed and the next run retries "
    "(raise [ingest] timeout_seconds or retries for slow servers)"
)
_ANSWER_FIX = (
    "the service answered something other than its data (a maintenance or proxy page, a cut "
    "answer): the answer is kept under EWS_HOME/raw and in the ledger as quarantined, nothing "
    "of it is stored, and the next run retries; if it persists, check the source's url"
)


class SourceError(EWSError):
    """A network source could not be read; nothing of this fetch was stored."""

    exit_code = 8


class HttpStatusError(SourceError):
    """The server answered with an error status that retrying cannot fix."""

    def __init__(self, problem: str, *, status: int, body: str, fix: str | None = None) -> None:
        self.status = status
        self.body = body
        super().__init__(problem, fix=fix)


class AnswerError(SourceError):
    """The server answered, but not with what the connector expects.

    ``body`` is the answer as received (kept in the raw area for inspection), ``location``
    the URL with any secret removed.
    """

    def __init__(self, problem: str, *, body: bytes, location: str, fix: str | None = None) -> None:
        self.body = body
        self.location = location
        super().__init__(problem, fix=fix or _ANSWER_FIX)


@dataclass(frozen=True)
class Expect:
    """What a connector expects an answer to be (the input of :func:`check_answer`).

    ``kind``: ``json`` (decoded, then ``shape`` returns the problem or None), ``text`` (a
    table whose first bytes are one of ``starts``) or ``binary`` (a file whose signature is
    one of ``starts``). ``content_types``: accepted substrings of the Content-Type (empty:
    any but HTML). ``describe``: what the answer should be, in words, for the error.

    A text table cut at a line end still reads as a whole table, so a ``text`` answer must
    be *framed* (a Content-Length or chunked transfer, which the client checks to the last
    byte); JSON proves itself whole by decoding, a binary file by its parser.
    """

    kind: str
    describe: str
    content_types: tuple[str, ...] = ()
    starts: tuple[bytes, ...] = ()
    shape: Callable[[Any], str | None] | None = None

    @classmethod
    def json(cls, describe: str, shape: Callable[[Any], str | None] | None = None) -> Expect:
        return cls("json", describe, ("json", "javascript", "text/plain"), shape=shape)


@dataclass(frozen=True)
class Answer:
    """A checked answer: its bytes, the decoded value (JSON value, or the bytes), the type."""

    body: bytes
    data: Any
    content_type: str
    location: str


def build_url(base: str, params: Mapping[str, object]) -> str:
    """``base?k=v&...`` with values URL-encoded; None values are left out."""
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return f"{base}?{query}" if query else base


def object_with_list(key: str) -> Callable[[Any], str | None]:
    """A JSON shape check: an object whose ``key`` is a list of objects."""

    def shape(data: Any) -> str | None:
        if not isinstance(data, dict):
            return f"a JSON {type(data).__name__}, not an object"
        items = data.get(key)
        if not isinstance(items, list):
            return f"no {key!r} list (keys: {sorted(data)[:8]})"
        odd = next((i for i, item in enumerate(items) if not isinstance(item, dict)), None)
        if odd is not None:
            return f"{key}[{odd}] is a JSON {type(items[odd]).__name__}, not an object"
        return None

    return shape


def _snippet(body: bytes, redact: str | None) -> str:
    text = " ".join(body[:200].decode("utf-8", "replace").split())
    return text.replace(redact, "***") if redact else text


def check_answer(
    body: bytes,
    content_type: str,
    expect: Expect,
    *,
    what: str,
    location: str,
    redact: str | None = None,
    framed: bool = True,
) -> Any:
    """The one decoding step of every connector: the decoded value, or :class:`AnswerError`.

    Refuses an HTML page (whatever its status said), a content type the connector does not
    read, an empty body, JSON that does not decode (cut short, not JSON) or has the wrong
    shape, and a text or binary file that does not start as its format does.
    """
    ctype = content_type.split(";", 1)[0].strip().lower()

    def refuse(problem: str) -> AnswerError:
        return AnswerError(f"{what}: {location} {problem}", body=body, location=location)

    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:64].lower()
    if "html" in ctype or head.startswith((b"<!doctype html", b"<html")):
        raise refuse(
            f"answered an HTML page ({ctype or 'no content type'}) where {expect.describe} was expected: "
            f"{_snippet(body, redact)!r}"
        )
    if ctype and expect.content_types and not any(t in ctype for t in expect.content_types):
        raise refuse(f"answered content type {ctype!r} where {expect.describe} was expected")
    if not body.strip():
        raise refuse(f"answered an empty body where {expect.describe} was expected")
    if expect.kind == "json":
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            tail = _snippet(body[-60:], redact)
            raise refuse(
                f"answered {len(body)} bytes that are not JSON ({exc}; cut short? it ends with {tail!r})"
            ) from None
        problem = expect.shape(data) if expect.shape is not None else None
        if problem:
            raise refuse(f"answered JSON of the wrong shape for {expect.describe}: {problem}")
        return data
    if expect.kind == "text" and not framed:
        raise refuse(
            f"answered {expect.describe} with neither Content-Length nor chunked framing: a cut answer "
            "cannot be told from a whole one"
        )
    if expect.starts and not body.lstrip(b"\xef\xbb\xbf").startswith(expect.starts):
        raise refuse(
            f"answered a body that does not start as {expect.describe} does "
            f"(expected {' or '.join(repr(s) for s in expect.starts)}): {_snippet(body, redact)!r}"
        )
    return body


@dataclass
class RateLimiter:
    """At most ``calls`` requests in any ``period`` seconds (FRED allows 120 per minute)."""

    calls: int
    period: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _stamps: deque[float] = field(default_factory=deque)

    def acquire(self) -> float:
        """Block until a request may go; returns the seconds waited."""
        waited = 0.0
        while True:
            now = self.clock()
            while self._stamps and now - self._stamps[0] >= self.period:
                self._stamps.popleft()
            if len(self._stamps) < self.calls:
                self._stamps.append(now)
                return waited
            pause = self.period - (now - self._stamps[0])
            self.sleep(pause)
            waited += pause


class _Watchdog:
    """Shuts the attempt's socket when its deadline passes, whatever phase it is in."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.expired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _RedirectRefusedError(SourceError):
    pass


def _opener(watchdog: _Watchdog) -> urllib.request.OpenerDirector:
    """A urllib opener whose connections report their socket to ``watchdog``; redirects only
    to http(s)."""

    class Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            watchdog.attach(self.sock)

    class SecureConnection(http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            watchdog.attach(self.sock)

    class Handler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(Connection, req)

    class SecureHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(SecureConnection, req, context=getattr(self, "_context", None))

    class Redirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
            if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
                raise _RedirectRefusedError(
                    f"{req.full_url} redirected to {newurl}, which is not an http(s) URL",
                    fix="point the source's url at the final http(s) address",
                )
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(Handler, SecureHandler, Redirects)


class HttpClient:
    """GET with the deadlines and retry policy of the module docstring; one instance per run."""

    def __init__(self, settings: IngestSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.timeout = settings.timeout_seconds
        self.retries = settings.retries
        self.backoff = settings.backoff_seconds
        self.max_backoff = settings.max_backoff_seconds
        self.user_agent = settings.user_agent
        self.source_seconds = settings.source_deadline_seconds
        self.sleep = sleep
        self.requests = 0
        self.retried = 0
        self._deadline: float | None = None
        self._deadline_seconds = 0.0
        self.last_framed = True  # whether the last answer had a Content-Length or chunked framing

    @contextmanager
    def source_deadline(self, seconds: float | None = None) -> Iterator[None]:
        """Bound every request of one source run together (default ``source_deadline_seconds``)."""
        seconds = self.source_seconds if seconds is None else seconds
        previous = self._deadline, self._deadline_seconds
        if seconds:
            self._deadline, self._deadline_seconds = time.monotonic() + float(seconds), float(seconds)
        try:
            yield
        finally:
            self._deadline, self._deadline_seconds = previous

    def _remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _past_deadline(self, what: str, shown: str, last: str) -> SourceError:
        return SourceError(
            f"{what}: {shown} stopped at the source's deadline of {self._deadline_seconds:g} s "
            f"([ingest] source_deadline_seconds) after {self.requests} request(s); last {last}",
            fix="the source is too slow for its deadline: the run is recorded as failed and the next run "
            "retries; raise [ingest] source_deadline_seconds, or fetch less per run (fewer series, a later start)",
        )

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.backoff * (2**attempt), self.max_backoff)
        if retry_after is not None:
            try:
                delay = min(max(float(retry_after), 0.0), self.max_backoff)
            except ValueError:
                pass  # an HTTP-date Retry-After: keep our own backoff
        remaining = self._remaining()
        if remaining is not None:
            delay = min(delay, max(remaining, 0.0))
        self.retried += 1
        self.sleep(delay)

    def _attempt(self, url: str, budget: float) -> tuple[int, Message, bytes]:
        """One request: (status, headers, whole body), all within ``budget`` seconds.

        An error status is returned, not raised, with at most 2,000 bytes of its body (read
        under the same watchdog).
        """
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked by the caller
            url, headers={"User-Agent": self.user_agent, "Accept-Encoding": "identity"}
        )
        with _Watchdog(budget) as watchdog:
            try:
                with _opener(watchdog).open(request, timeout=budget) as response:
                    if response.status == 204:
                        return 204, response.headers, b""
                    expected = response.headers.get("Content-Length")
                    self.last_framed = expected is not None or bool(getattr(response, "chunked", False))
                    chunks: list[bytes] = []
                    received = 0
                    while True:
                        chunk = response.read1(1 << 16)
                        if not chunk:
                            break
                        chunks.append(chunk)
                        received += len(chunk)
                    if watchdog.expired:
                        raise TimeoutError(f"the whole answer did not arrive within {budget:g} s ({received} bytes)")
                    if expected is not None and expected.strip().isdigit() and received < int(expected):
                        raise http.client.IncompleteRead(b"".join(chunks), int(expected) - received)
                    return response.status, response.headers, b"".join(chunks)
            except urllib.error.HTTPError as exc:
                try:
                    body = exc.read(2000)
                except (OSError, http.client.HTTPException):
                    body = b""
                return exc.code, exc.headers, body
            except (OSError, http.client.HTTPException):
                if watchdog.expired:
                    raise TimeoutError(f"the whole answer did not arrive within {budget:g} s") from None
                raise

    def _fetch(
        self, url: str, *, what: str, fix_4xx: str, limiter: RateLimiter | None, redact: str | None
    ) -> tuple[int, str, bytes]:
        shown = url.replace(redact, "***") if redact else url
        if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
            raise SourceError(
                f"{what}: {shown} is not an http(s) URL",
                fix="give the source's url as http://... or https://...",
            )
        last = "no attempt"
        for attempt in range(self.retries + 1):
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                raise self._past_deadline(what, shown, last)
            if limiter is not None:
                limiter.acquire()
            budget = self.timeout if remaining is None else min(self.timeout, remaining)
            self.requests += 1
            retry_after = None
            try:
                status, headers, body = self._attempt(url, budget)
            except _RedirectRefusedError:
                raise
            except (TimeoutError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(exc).__name__}: {reason}"
                if redact:
                    last = last.replace(redact, "***")
            else:
                if 300 <= status < 400:  # urllib follows http(s) redirects; this one it refused
                    raise SourceError(
                        f"{what}: {shown} redirected to {headers.get('Location')}, which is not an http(s) URL "
                        f"(HTTP {status}, not followed)",
                        fix="point the source's url at the final http(s) address",
                    )
                if status < 400:
                    return status, headers.get("Content-Type", "") or "", body
                text = body.decode("utf-8", "replace")[:500]
                if redact:
                    text = text.replace(redact, "***")
                if status != 429 and status < 500:
                    raise HttpStatusError(
                        f"{what}: {shown} answered HTTP {status}: {text.strip()[:300]}",
                        status=status,
                        body=text,
                        fix=fix_4xx,
                    )
                last = f"HTTP {status}"
                retry_after = headers.get("Retry-After")
            if attempt < self.retries:
                self._wait(attempt, retry_after)
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            raise self._past_deadline(what, shown, last)
        raise SourceError(f"{what}: {shown} failed {self.retries + 1} time(s), last {last}", fix=_RETRY_FIX)

    def get(
        self, url: str, *, what: str, fix_4xx: str, limiter: RateLimiter | None = None, redact: str | None = None
    ) -> bytes | None:
        """The body of ``url`` (None on 204), unchecked. ``redact`` is removed from any error text.

        Connectors read through :meth:`get_answer`, which adds the checked decoding step.
        """
        status, _ctype, body = self._fetch(url, what=what, fix_4xx=fix_4xx, limiter=limiter, redact=redact)
        return None if status == 204 else body

    def get_answer(
        self,
        url: str,
        *,
        what: str,
        fix_4xx: str,
        expect: Expect,
        limiter: RateLimiter | None = None,
        redact: str | None = None,
    ) -> Answer | None:
        """The checked answer of ``url`` (None on 204): :func:`check_answer` against ``expect``."""
        status, ctype, body = self._fetch(url, what=what, fix_4xx=fix_4xx, limiter=limiter, redact=redact)
        if status == 204:
            return None
        shown = url.replace(redact, "***") if redact else url
        data = check_answer(body, ctype, expect, what=what, location=shown, redact=redact, framed=self.last_framed)
        return Answer(body=body, data=data, content_type=ctype, location=shown)
