"""Notifiers: the only code that sends alerts out (webhook, Slack, email), and their workers.

Each channel has its own worker thread and queue, so a slow or failing receiver delays only
its own deliveries, never the monitor loop nor the other channels. A delivery is stored before
it is queued and updated after every attempt (retries back off exponentially), so failures are
visible through the API and deliveries still pending at shutdown resume at the next start.

Receivers are refused when their address is private, loopback or link-local, unless the
``notify_allow_private`` setting allows it: alert channels must not become a way into the
network the server sits in.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import queue
import secrets
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import structlog
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from sightline._clock import Clock, system_clock
from sightline._daemon import DaemonTask
from sightline.errors import ConfigError, NotifyError
from sightline.model import Alert, Delivery
from sightline.store.base import TraceStore

__all__ = [
    "Channel",
    "Dispatcher",
    "EmailChannel",
    "Notifier",
    "SlackChannel",
    "WebhookChannel",
    "alert_payload",
    "check_host",
    "parse_channels",
    "slack_payload",
]

log = structlog.get_logger("sightline.alerts")

_MAX_BACKOFF_S = 300.0
_SEVERITY_EMOJI = {
    "P0": ":rotating_light:",
    "P1": ":red_circle:",
    "P2": ":large_orange_circle:",
    "P3": ":large_blue_circle:",
}


class _ChannelBase(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    max_attempts: int = Field(5, ge=1, le=20)
    backoff_s: float = Field(1.0, ge=0, le=600, description="First retry delay; doubles after.")
    timeout_s: float = Field(10.0, gt=0, le=120)


def _http_url(url: str) -> str:
    """A receiver's URL is http(s) with a host: anything else would fail every delivery."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {url[:100]!r}")
    return url


def _one_line(v: str) -> str:
    if any(c < " " or c == "\x7f" for c in v):
        raise ValueError("must not contain line breaks or other control characters")
    return v


HttpUrl = Annotated[str, Field(max_length=2000), AfterValidator(_http_url)]
Line = Annotated[str, AfterValidator(_one_line)]


class WebhookChannel(_ChannelBase):
    """POST the Alertmanager-like JSON payload to ``url``."""

    type: Literal["webhook"]
    url: HttpUrl
    headers: dict[Line, Line] = Field(default_factory=dict)


class SlackChannel(_ChannelBase):
    """POST a Slack incoming-webhook message (``text`` + Block Kit ``blocks``) to ``url``."""

    type: Literal["slack"]
    url: HttpUrl
    channel: str | None = None


class EmailChannel(_ChannelBase):
    """Send a plain-text email over SMTP (STARTTLS or implicit TLS when asked)."""

    type: Literal["email"]
    smtp_host: Line = Field(min_length=1)
    smtp_port: int = Field(587, ge=1, le=65535)
    tls: Literal["none", "starttls", "ssl"] = "starttls"
    username: str | None = None
    password: str | None = None
    from_: Line = Field(alias="from", min_length=1)
    to: list[Annotated[Line, Field(min_length=1)]] = Field(min_length=1)


Channel = Annotated[WebhookChannel | SlackChannel | EmailChannel, Field(discriminator="type")]
_CHANNEL: TypeAdapter[Channel] = TypeAdapter(Channel)


def parse_channels(raw: Any) -> dict[str, Channel]:
    """Channels by name from the alerts file's ``channels`` mapping."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("channels: expected a mapping of channel name to its settings")
    out: dict[str, Channel] = {}
    for name, spec in raw.items():
        try:
            out[str(name)] = _CHANNEL.validate_python(spec)
        except ValidationError as e:
            msg = "; ".join(
                f"{'.'.join(str(x) for x in err['loc'][1:])}: {err['msg']}" for err in e.errors()
            )
            raise ConfigError(f"channel {name}: {msg}") from None
    return out


# -- payloads ----------------------------------------------------------------------------------


def alert_payload(
    alert: Alert,
    *,
    status: str,
    owner: str | None,
    runbook: str | None,
    labels: Mapping[str, str],
    dashboard_url: str,
) -> dict[str, Any]:
    """The webhook body (Alertmanager-like); docs/alerting.md lists its fields."""
    group = {k: v for k, v in alert.group.items()}
    return {
        "status": status,
        "rule": alert.rule,
        "severity": alert.severity,
        "labels": {**labels, **{k: "" if v is None else str(v) for k, v in group.items()}},
        "group": group,
        "value": alert.value,
        "threshold": alert.threshold,
        "window": alert.window,
        "started_at": (alert.started_at or alert.pending_since).isoformat(),
        "ended_at": alert.ended_at.isoformat() if alert.ended_at else None,
        "owner": owner,
        "runbook": runbook,
        "dashboard_url": dashboard_url,
        "summary": alert.summary,
        "alert_id": alert.alert_id,
        "project": alert.project_id,
    }


def _title(p: Mapping[str, Any]) -> str:
    where = ", ".join(f"{k}={v}" for k, v in p["group"].items())
    return f"[{p['severity']}] {p['status'].upper()}: {p['rule']}" + (
        f" ({where})" if where else ""
    )


def slack_payload(p: Mapping[str, Any], channel: str | None = None) -> dict[str, Any]:
    """A Slack incoming-webhook message for an alert payload (or a weekly digest)."""
    if p.get("kind") == "digest":
        msg: dict[str, Any] = {"text": f"*{p['title']}*\n```{p['summary']}```"}
        if channel:
            msg["channel"] = channel
        return msg
    emoji = (
        ":white_check_mark:"
        if p["status"] == "resolved"
        else _SEVERITY_EMOJI.get(p["severity"], "")
    )
    fields = [
        {"type": "mrkdwn", "text": f"*Value*\n{_num(p['value'])}"},
        {"type": "mrkdwn", "text": f"*Threshold*\n{_num(p['threshold'])}"},
        {"type": "mrkdwn", "text": f"*Window*\n{p['window'] or '-'}"},
        {"type": "mrkdwn", "text": f"*Started*\n{p['started_at']}"},
    ]
    if p["owner"]:
        fields.append({"type": "mrkdwn", "text": f"*Owner*\n{p['owner']}"})
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _title(p)[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {p['summary']}"[:3000]}},
        {"type": "section", "fields": fields},
    ]
    if p["runbook"]:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*Runbook*\n{p['runbook']}"[:3000]},
            }
        )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open in Sightline"},
                    "url": p["dashboard_url"],
                }
            ],
        }
    )
    out: dict[str, Any] = {"text": f"{emoji} {_title(p)}: {p['summary']}", "blocks": blocks}
    if channel:
        out["channel"] = channel
    return out


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _header(v: str) -> str:
    """A header value on one line: a group value (span data) may hold CR, LF or other controls."""
    return "".join(" " if c < " " or c == "\x7f" else c for c in v)


def email_message(p: Mapping[str, Any], ch: EmailChannel) -> EmailMessage:
    """A plain-text email for an alert payload (or a weekly digest)."""
    msg = EmailMessage()
    if p.get("kind") == "digest":
        msg["Subject"] = _header(str(p["title"]))[:200]
        msg["From"] = ch.from_
        msg["To"] = ", ".join(ch.to)
        msg.set_content(str(p["summary"]))
        return msg
    msg["Subject"] = _header(_title(p))[:200]
    msg["From"] = ch.from_
    msg["To"] = ", ".join(ch.to)
    lines = [
        p["summary"],
        "",
        f"Rule:       {p['rule']}",
        f"Severity:   {p['severity']}",
        f"Status:     {p['status']}",
        f"Value:      {_num(p['value'])}",
        f"Threshold:  {_num(p['threshold'])}",
        f"Window:     {p['window'] or '-'}",
        f"Started at: {p['started_at']}",
    ]
    if p["ended_at"]:
        lines.append(f"Ended at:   {p['ended_at']}")
    for k, v in p["group"].items():
        lines.append(f"{k}: {v}")
    if p["owner"]:
        lines.append(f"Owner:      {p['owner']}")
    lines += ["", f"Dashboard: {p['dashboard_url']}"]
    if p["runbook"]:
        lines += ["", "Runbook:", p["runbook"]]
    msg.set_content("\n".join(lines))
    return msg


# -- sending -----------------------------------------------------------------------------------


def check_host(host: str, port: int, *, allow_private: bool) -> None:
    """NotifyError unless every address ``host`` resolves to is public (or private is allowed)."""
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError as e:
        raise NotifyError(f"cannot resolve {host}: {e}") from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise NotifyError(
                f"refusing to notify {host} ({ip}): private, loopback or reserved address"
                " (set SIGHTLINE_NOTIFY_ALLOW_PRIVATE=true to allow)"
            )


def _check_url(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotifyError(f"not an http(s) URL: {url[:100]!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    check_host(parts.hostname, port, allow_private=allow_private)


class Notifier(Protocol):
    """Sends one payload; raises NotifyError (or an OSError/httpx error) when it cannot."""

    def send(self, payload: Mapping[str, Any]) -> None:
        """Deliver ``payload`` once."""
        ...


class _HttpNotifier:
    def __init__(self, ch: WebhookChannel | SlackChannel, *, allow_private: bool) -> None:
        self._ch = ch
        self._allow_private = allow_private
        # No redirects: a receiver must not bounce us to an address the check refused.
        self._client = httpx.Client(timeout=ch.timeout_s, follow_redirects=False)

    def send(self, payload: Mapping[str, Any]) -> None:
        ch = self._ch
        _check_url(ch.url, self._allow_private)
        if isinstance(ch, SlackChannel):
            body: Mapping[str, Any] = slack_payload(payload, ch.channel)
            headers: dict[str, str] = {}
        else:
            body, headers = payload, dict(ch.headers)
        # Streamed: the answer's body is never needed on success, and on failure its first
        # bytes are enough for the error. Reading it whole let a receiver fill the server's
        # memory (a huge body) or hold the attempt far past timeout_s (a trickling one).
        with self._client.stream("POST", ch.url, json=body, headers=headers) as r:
            if r.status_code < 300:
                return
            e = _HttpRefused(f"HTTP {r.status_code}: {_head(r, self._ch.timeout_s)}")
            if r.status_code in (429, 503):
                e.retry_after = _retry_after(r.headers.get("retry-after"))
            raise e

    def close(self) -> None:
        self._client.close()


class _HttpRefused(NotifyError):
    """The receiver answered with an error status (``retry_after``: when it asked us back)."""

    retry_after: float | None = None


def _retry_after(v: str | None) -> float | None:
    """Retry-After in seconds (only the delay form; an HTTP date is ignored)."""
    try:
        secs = float(v) if v is not None else None
    except ValueError:
        return None
    return secs if secs is not None and math.isfinite(secs) and secs >= 0 else None


def _head(r: httpx.Response, timeout_s: float, limit: int = 200) -> str:
    """The first ``limit`` bytes of an error answer's body, read for at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    got = b""
    try:
        for chunk in r.iter_raw(1024):
            got += chunk
            if len(got) >= limit or time.monotonic() > deadline:
                break
    except httpx.HTTPError:
        pass  # the status is the error; a body cut short does not matter
    return got[:limit].decode("utf-8", "replace")


class _EmailNotifier:
    def __init__(self, ch: EmailChannel, *, allow_private: bool) -> None:
        self._ch = ch
        self._allow_private = allow_private

    def send(self, payload: Mapping[str, Any]) -> None:
        ch = self._ch
        check_host(ch.smtp_host, ch.smtp_port, allow_private=self._allow_private)
        msg = email_message(payload, ch)
        smtp: smtplib.SMTP
        if ch.tls == "ssl":
            smtp = smtplib.SMTP_SSL(
                ch.smtp_host,
                ch.smtp_port,
                timeout=ch.timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(ch.smtp_host, ch.smtp_port, timeout=ch.timeout_s)
        with smtp:
            if ch.tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if ch.username:
                smtp.login(ch.username, ch.password or "")
            smtp.send_message(msg)

    def close(self) -> None:
        pass


def _notifier(ch: Channel, allow_private: bool) -> _HttpNotifier | _EmailNotifier:
    if isinstance(ch, EmailChannel):
        return _EmailNotifier(ch, allow_private=allow_private)
    return _HttpNotifier(ch, allow_private=allow_private)


class _ChannelWorker(DaemonTask):
    """Delivers one channel's queue in order, retrying each delivery with backoff."""

    def __init__(
        self,
        name: str,
        ch: Channel,
        store: TraceStore,
        clock: Clock,
        allow_private: bool,
        on_result: Callable[[Delivery], None] | None,
    ) -> None:
        super().__init__(interval_s=0)
        self.name = f"notify-{name}"
        self.channel_name = name
        self._ch = ch
        self._store = store
        self._clock = clock
        self._allow_private = allow_private
        self._notifier = _notifier(ch, allow_private)
        self._on_result = on_result
        self.queue: queue.Queue[Delivery] = queue.Queue(maxsize=10_000)

    def start(self) -> None:
        """Start delivering; a worker stopped before (a deposed leader) gets a new client."""
        if self._thread is None and self._closed:
            self._notifier = _notifier(self._ch, self._allow_private)
            self._closed = False
        super().start()

    _closed = False

    def run_once(self) -> None:
        try:
            d = self.queue.get(timeout=0.2)
        except queue.Empty:
            return
        self._deliver(d)

    def _deliver(self, d: Delivery) -> None:
        while d.attempts < self._ch.max_attempts:
            attempt = d.attempts + 1
            try:
                self._notifier.send(d.payload)
            except Exception as e:  # whatever fails, the attempt is recorded
                # (NotifyError, httpx, OSError and SMTP errors are expected; anything else, e.g. a
                # payload the message cannot hold, used to leave the delivery pending forever)
                kind = "NotifyError" if isinstance(e, NotifyError) else type(e).__name__
                err = f"{kind}: {e}"[:500]
                final = attempt >= self._ch.max_attempts
                d = dataclasses.replace(
                    d,
                    attempts=attempt,
                    last_error=err,
                    status="failed" if final else "pending",
                    updated_at=self._clock(),
                )
                self._store.save_delivery(d)
                log.warning(
                    "notification_failed",
                    channel=self.channel_name,
                    alert_id=d.alert_id,
                    attempt=attempt,
                    error=err,
                    final=final,
                )
                if final:
                    break
                delay = self._ch.backoff_s * 2 ** (attempt - 1)
                if isinstance(e, _HttpRefused) and e.retry_after is not None:
                    delay = max(delay, e.retry_after)  # a 429's Retry-After, honoured
                delay = min(delay, _MAX_BACKOFF_S)
                if self._stop.wait(delay):
                    return  # shutting down: stays pending, resumed at the next start
                continue
            d = dataclasses.replace(
                d, attempts=attempt, status="delivered", updated_at=self._clock()
            )
            self._store.save_delivery(d)
            log.info("notification_delivered", channel=self.channel_name, alert_id=d.alert_id)
            break
        if self._on_result is not None:
            self._on_result(d)

    def on_stop(self) -> None:
        # What is still queued stays pending in the store: the next start (here, or the leader
        # that takes over) queues it from there. Kept here, a re-elected leader would send it
        # again after the other leader had, with a stale copy of its status.
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self._notifier.close()
        self._closed = True


class Dispatcher:
    """Queues deliveries to channels; one worker per channel."""

    def __init__(
        self,
        store: TraceStore,
        channels: Mapping[str, Channel],
        *,
        clock: Clock = system_clock,
        allow_private: bool = False,
        on_result: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.channels = dict(channels)
        self._store = store
        self._clock = clock
        self._workers = {
            name: _ChannelWorker(name, ch, store, clock, allow_private, on_result)
            for name, ch in channels.items()
        }

    @property
    def workers(self) -> list[_ChannelWorker]:
        """One delivery loop per channel."""
        return list(self._workers.values())

    def start(self) -> None:
        """Start the workers and resume deliveries left pending by the last run."""
        for w in self._workers.values():
            w.start()
        for d in reversed(self._store.list_deliveries(None, status="pending", limit=10_000)):
            worker = self._workers.get(d.channel)
            if worker is not None:
                self._enqueue(worker, d)

    def stop(self) -> None:
        """Stop the workers (an attempt in flight finishes first)."""
        for w in self._workers.values():
            w._stop.set()
        for w in self._workers.values():
            w.stop()

    def submit(
        self,
        project_id: str,
        alert_id: str,
        event: str,
        payload: dict[str, Any],
        channels: Sequence[str],
    ) -> list[Delivery]:
        """Store one delivery per channel and queue it; unknown channels are recorded failed."""
        out = self.prepare(project_id, alert_id, event, payload, channels)
        for d in out:
            self._store.save_delivery(d)
        self.enqueue(out)
        return out

    def prepare(
        self,
        project_id: str,
        alert_id: str,
        event: str,
        payload: dict[str, Any],
        channels: Sequence[str],
    ) -> list[Delivery]:
        """One delivery per channel, not yet stored nor queued (unknown channels: failed).

        For a caller that stores them in the same transaction as the state change they
        announce (``TraceStore.save_alerts``), then hands them to :meth:`enqueue`.
        """
        out = []
        now = self._clock()
        for name in channels:
            d = Delivery(
                project_id=project_id,
                delivery_id=secrets.token_hex(8),
                alert_id=alert_id,
                channel=name,
                event=event,
                status="pending",
                payload=payload,
                created_at=now,
                updated_at=now,
            )
            if name not in self._workers:
                d = dataclasses.replace(d, status="failed", last_error=f"unknown channel {name!r}")
            out.append(d)
        return out

    def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        """Queue stored pending deliveries to their channels' workers."""
        for d in deliveries:
            w = self._workers.get(d.channel)
            if w is not None and d.status == "pending":
                self._enqueue(w, d)

    def _enqueue(self, w: _ChannelWorker, d: Delivery) -> None:
        try:
            w.queue.put_nowait(d)
        except queue.Full:
            self._store.save_delivery(
                dataclasses.replace(
                    d, status="failed", last_error="channel queue full", updated_at=self._clock()
                )
            )

    def idle(self) -> bool:
        """True when no channel has a delivery queued."""
        return all(w.queue.empty() for w in self._workers.values())
