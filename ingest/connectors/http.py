"""HTTP for the network connectors: timeouts, retries with backoff, rate limits, clear errors.

Contract of :meth:`HttpClient.get`:

- every request has a timeout (``[ingest] timeout_seconds``);
- 429, 5xx, timeouts, refused or reset connections and truncated bodies (fewer bytes than
  ``Content-Length``) are retried up to ``[ingest] retries`` times, waiting
  ``backoff_seconds * 2**attempt`` (capped at ``max_backoff_seconds``; a ``Retry-After``
  header wins, within the same cap);
- any other 4xx is not retried: it raises :class:`HttpStatusError` quoting the server's
  answer, with the fix the connector supplies (a 4xx means the request is wrong);
- a 204 returns ``None`` (FDSN's "no data");
- only ``http`` and ``https`` URLs are fetched: any other scheme (``file:``, ``ftp:``, ...)
  raises :class:`SourceError` before a request is made.

Only the standard library is used (``urllib``), so nothing here depends on a proxy library.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from core.errors import EWSError
from core.settings import IngestSettings

__all__ = ["SourceError", "HttpStatusError", "HttpClient", "RateLimiter", "build_url"]


class SourceError(EWSError):
    """A network source could not be read; nothing of this fetch was stored."""

    exit_code = 8


class HttpStatusError(SourceError):
    """The server answered with an error status that retrying cannot fix."""

    def __init__(self, problem: str, *, status: int, body: str, fix: str | None = None) -> None:
        self.status = status
        self.body = body
        super().__init__(problem, fix=fix)


def build_url(base: str, params: Mapping[str, object]) -> str:
    """``base?k=v&...`` with values URL-encoded; None values are left out."""
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return f"{base}?{query}" if query else base


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


class HttpClient:
    """GET with the retry policy of the module docstring; one instance per run."""

    def __init__(self, settings: IngestSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.timeout = settings.timeout_seconds
        self.retries = settings.retries
        self.backoff = settings.backoff_seconds
        self.max_backoff = settings.max_backoff_seconds
        self.user_agent = settings.user_agent
        self.sleep = sleep
        self.requests = 0
        self.retried = 0

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.backoff * (2**attempt), self.max_backoff)
        if retry_after is not None:
            try:
                delay = min(max(float(retry_after), 0.0), self.max_backoff)
            except ValueError:
                pass  # an HTTP-date Retry-After: keep our own backoff
        self.retried += 1
        self.sleep(delay)

    def get(
        self, url: str, *, what: str, fix_4xx: str, limiter: RateLimiter | None = None, redact: str | None = None
    ) -> bytes | None:
        """The body of ``url`` (None on 204). ``redact`` is removed from any error text (API keys)."""
        shown = url.replace(redact, "***") if redact else url
        if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
            raise SourceError(
                f"{what}: {shown} is not an http(s) URL",
                fix="give the source's url as http://... or https://...",
            )
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if limiter is not None:
                limiter.acquire()
            request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
                url, headers={"User-Agent": self.user_agent, "Accept-Encoding": "identity"}
            )
            self.requests += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) only
                    if response.status == 204:
                        return None
                    return response.read()
            except urllib.error.HTTPError as exc:
                body = exc.read().decode("utf-8", "replace")[:500]
                if redact:
                    body = body.replace(redact, "***")
                if exc.code == 429 or exc.code >= 500:
                    last = f"HTTP {exc.code}"
                    if attempt < self.retries:
                        self._wait(attempt, exc.headers.get("Retry-After"))
                    continue
                raise HttpStatusError(
                    f"{what}: {shown} answered HTTP {exc.code}: {body.strip()[:300]}",
                    status=exc.code,
                    body=body,
                    fix=fix_4xx,
                ) from None
            except (
                TimeoutError,
                urllib.error.URLError,
                ConnectionError,
                http.client.IncompleteRead,
                http.client.RemoteDisconnected,
            ) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(exc).__name__}: {reason}"
                if attempt < self.retries:
                    self._wait(attempt, None)
        raise SourceError(
            f"{what}: {shown} failed {self.retries + 1} time(s), last {last}",
            fix="the source is down or slow: the run is recorded as failed and the next run retries "
            "(raise [ingest] timeout_seconds or retries for slow servers)",
        )
