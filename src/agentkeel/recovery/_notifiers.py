"""Telling people about escalations: signed webhooks, Slack-style webhooks, email.

A notifier is anything callable with a :class:`Notification`; a plain function
will do. The three built in use only the standard library (``urllib``, ``smtplib``),
retry transient failures with exponential back-off, and raise
:class:`NotificationError` when they give up. The escalation manager calls them on a
worker thread, logs and counts a failure, and notes it on the ticket: a dead mail
server never reaches the agent.

Webhook signatures follow the scheme of Stripe and Slack: the receiver recomputes
``HMAC-SHA256(secret, timestamp + "." + body)`` and compares it with
``X-Agentkeel-Signature: sha256=<hex>``; the timestamp (``X-Agentkeel-Timestamp``,
seconds since the epoch) bounds replays. :func:`verify_signature` does exactly that.
Every attempt is signed afresh; ``X-Agentkeel-Delivery`` stays the same across the
retries of one notification, so a receiver can drop duplicates.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any, Protocol, runtime_checkable

from agentkeel._errors import ConfigurationError
from agentkeel.recovery import _config_checks as check
from agentkeel.recovery._errors import NotificationError
from agentkeel.recovery._ticket import Ticket

__all__ = [
    "EmailNotifier",
    "Notification",
    "Notifier",
    "SlackNotifier",
    "WebhookNotifier",
    "build_notification",
    "sign_payload",
    "verify_signature",
]

_log = logging.getLogger("agentkeel.recovery")
SIGNATURE_HEADER = "X-Agentkeel-Signature"
TIMESTAMP_HEADER = "X-Agentkeel-Timestamp"
DELIVERY_HEADER = "X-Agentkeel-Delivery"
EVENT_HEADER = "X-Agentkeel-Event"
_USER_AGENT = "agentkeel-notifier/0.1"
_TITLES = {
    "created": "New escalation",
    "escalated": "Escalated",
    "expired": "Expired without resolution",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One announcement about one ticket: ``kind`` says what happened to it."""

    kind: str
    ticket: Ticket
    title: str
    text: str
    delivery_id: str

    def to_dict(self) -> dict[str, Any]:
        ticket = self.ticket.to_dict()
        ticket.pop("changes", None)  # the timeline stays in the store, not in every message
        return {
            "kind": self.kind,
            "title": self.title,
            "text": self.text,
            "delivery_id": self.delivery_id,
            "ticket": ticket,
        }


@runtime_checkable
class Notifier(Protocol):
    """Delivers a notification or raises. ``def notify(notification): ...`` satisfies it.

    Optional attributes: ``name`` (shown in logs and on the ticket; never put secrets
    in it) and ``channel`` (``"webhook"``, ``"slack"`` or ``"email"``, which
    ``EscalationConfig.notification_channels`` can switch off).
    """

    def __call__(self, notification: Notification, /) -> None: ...


def build_notification(kind: str, ticket: Ticket, *, delivery_id: str) -> Notification:
    """The title and plain-text summary every notifier starts from."""
    level = ticket.level.value.replace("_", " ")
    title = f"{_TITLES.get(kind, kind.capitalize())}: {ticket.ticket_id} ({level})"
    lines = [
        f"Ticket:   {ticket.ticket_id}",
        f"Level:    {ticket.level.value}",
        f"Priority: {ticket.priority}/100",
        f"Status:   {ticket.status.value}",
        f"Error:    {ticket.error_type}: {ticket.error_message}",
        f"Category: {ticket.category} (severity {ticket.severity})",
    ]
    if ticket.agent_id or ticket.task_id:
        lines.append(f"Agent:    {ticket.agent_id or '-'}  task {ticket.task_id or '-'}")
    lines.append(f"Attempts: {ticket.recovery_attempts} automatic recovery attempt(s)")
    if ticket.flags:
        lines.append(f"Flags:    {', '.join(ticket.flags)}")
    if ticket.resolution:
        lines.append(f"Resolution: {ticket.resolution} (by {ticket.resolved_by or '?'})")
    if not ticket.is_final:
        lines += [
            "",
            f"Acknowledge: keel escalations ack {ticket.ticket_id}",
            f"Resolve:     keel escalations resolve {ticket.ticket_id} --resolution '...'",
        ]
    return Notification(kind, ticket, title, "\n".join(lines), delivery_id)


# --------------------------------------------------------------------- signing
def sign_payload(secret: str | bytes, body: bytes, timestamp: int | str) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``"<timestamp>." + body``)."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str | bytes,
    body: bytes,
    timestamp: int | str,
    signature: str,
    *,
    tolerance: float | timedelta = 300,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` is ours for this body and timestamp, and fresh enough.

    For receivers: pass the raw request body and the two headers. ``tolerance``
    (seconds) rejects replays of old deliveries; ``now`` is for tests.
    """
    try:
        sent_at = int(str(timestamp).strip())
    except ValueError:
        return False
    limit = tolerance.total_seconds() if isinstance(tolerance, timedelta) else float(tolerance)
    current = time.time() if now is None else now
    if abs(current - sent_at) > limit:
        return False
    expected = sign_payload(secret, body, sent_at)
    given = signature.strip()
    if not given.startswith("sha256="):
        given = f"sha256={given}"
    return hmac.compare_digest(expected, given)


# ------------------------------------------------------------------ HTTP posting
class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A signed POST that is redirected would arrive as an unsigned GET: refuse."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def _safe_name(kind: str, url: str) -> str:
    """``kind host:port``: webhook paths often hold tokens, so they are never shown."""
    parts = urllib.parse.urlsplit(url)
    return f"{kind} {parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def _check_url(url: str, name: str) -> str:
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ConfigurationError(f"{name} must be an http:// or https:// URL, got {url!r}")
    if not urllib.parse.urlsplit(url).hostname:
        raise ConfigurationError(f"{name} has no host: {url!r}")
    return url


class _Retrying:
    """Attempts, exponential back-off and the sleep to use (swappable for tests)."""

    def __init__(
        self,
        *,
        retries: int,
        backoff: float | timedelta,
        max_backoff: float | timedelta,
        timeout: float | timedelta,
        sleep: Callable[[float], None] | None,
    ) -> None:
        self.retries = check.count(retries, "retries", minimum=0)
        self.backoff = check.seconds(backoff, "backoff", allow_zero=True)
        self.max_backoff = check.seconds(max_backoff, "max_backoff", allow_zero=True)
        self.timeout = check.seconds(timeout, "timeout")
        self._sleep = sleep if sleep is not None else time.sleep
        self.attempts_made = 0

    def pause(self, attempt: int, retry_after: float | None = None) -> None:
        delay = min(self.backoff * (2**attempt), self.max_backoff)
        if retry_after is not None:
            delay = min(max(delay, retry_after), self.max_backoff)
        if delay > 0:
            self._sleep(delay)


def _post(
    name: str,
    url: str,
    body: bytes,
    headers: Callable[[], dict[str, str]],
    policy: _Retrying,
) -> int:
    """POST ``body``; retry connection errors, timeouts, 408/425/429 and 5xx."""
    last = "no attempt made"
    for attempt in range(policy.retries + 1):
        policy.attempts_made += 1
        retry_after: float | None = None
        # The scheme was checked to be http(s) at construction (_check_url).
        request = urllib.request.Request(url, data=body, headers=headers(), method="POST")  # noqa: S310
        try:
            with _opener.open(request, timeout=policy.timeout) as response:
                response.read(65_536)
                return int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
            last = f"HTTP {status} {exc.reason}"
            if status not in _RETRY_STATUS:
                raise NotificationError(
                    f"{name} refused the notification: {last} (not retried: check the URL, "
                    "the secret and what the receiver expects)"
                ) from None
            retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last = f"{type(reason).__name__}: {reason}"
        if attempt < policy.retries:
            _log.debug("%s: attempt %d failed (%s); retrying", name, attempt + 1, last)
            policy.pause(attempt, retry_after)
    raise NotificationError(
        f"{name} failed after {policy.retries + 1} attempt(s): {last}; "
        "check that the receiver is up and reachable"
    )


def _retry_after(value: object) -> float | None:
    try:
        return max(0.0, float(str(value))) if value is not None else None
    except ValueError:
        return None


def _json(data: Mapping[str, Any]) -> bytes:
    # Compact and key-sorted: the exact bytes are what gets signed and verified.
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()


class WebhookNotifier:
    """POSTs the notification as JSON to ``url``, signed with HMAC-SHA256.

    ``secret`` is shared with the receiver (which checks it with
    :func:`verify_signature`). Transient failures are retried ``retries`` times with
    back-off ``backoff`` x 2^n seconds (at most ``max_backoff``; ``Retry-After`` is
    honoured up to it); ``timeout`` bounds each attempt. ``sleep`` is for tests.
    """

    channel = "webhook"

    def __init__(
        self,
        url: str,
        *,
        secret: str | bytes,
        timeout: float | timedelta = 5.0,
        retries: int = 3,
        backoff: float | timedelta = 0.5,
        max_backoff: float | timedelta = 30.0,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = _check_url(url, "WebhookNotifier url")
        if not isinstance(secret, str | bytes) or not secret:
            raise ConfigurationError(
                "WebhookNotifier needs a non-empty secret: the receiver uses it to check "
                "the X-Agentkeel-Signature header"
            )
        self._secret = secret
        self._retrying = _Retrying(
            retries=retries, backoff=backoff, max_backoff=max_backoff, timeout=timeout, sleep=sleep
        )
        self._extra = dict(headers or {})
        self._clock = clock
        self.name = _safe_name("webhook", url)

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.name!r})"  # never the secret, never the URL's path

    def __call__(self, notification: Notification, /) -> None:
        body = _json(notification.to_dict())

        def headers() -> dict[str, str]:
            timestamp = int(self._clock())
            return {
                **self._extra,
                "Content-Type": "application/json",
                "User-Agent": _USER_AGENT,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign_payload(self._secret, body, timestamp),
                DELIVERY_HEADER: notification.delivery_id,
                EVENT_HEADER: notification.kind,
            }

        _post(self.name, self.url, body, headers, self._retrying)


_SLACK_ICON = {
    "auto_recovery": ":information_source:",
    "supervisor_review": ":eyes:",
    "human_intervention": ":warning:",
    "critical_alert": ":rotating_light:",
}


def _mrkdwn(text: str, limit: int) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def slack_payload(notification: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (fallback) and Block Kit ``blocks``."""
    t = notification.ticket
    icon = _SLACK_ICON.get(t.level.value, ":bell:")
    fields = [
        ("Level", t.level.value),
        ("Priority", f"{t.priority}/100"),
        ("Status", t.status.value),
        ("Ticket", f"`{t.ticket_id}`"),
        ("Agent", t.agent_id or "-"),
        ("Task", t.task_id or "-"),
        ("Category", f"{t.category} ({t.severity})"),
        ("Recovery attempts", str(t.recovery_attempts)),
    ]
    error = _mrkdwn(f"{t.error_type}: {t.error_message}", 2_800)
    if t.is_final:
        hint = f"{t.status.value.capitalize()}" + (f": {t.resolution}" if t.resolution else "")
    else:
        hint = (
            f"Acknowledge: `keel escalations ack {t.ticket_id}`  ·  "
            f"Resolve: `keel escalations resolve {t.ticket_id} --resolution '…'`"
        )
    return {
        "text": _mrkdwn(
            f"{icon} {notification.title}: {t.error_type}: {t.error_message} "
            f"(priority {t.priority})",
            3_000,
        ),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": notification.title[:150], "emoji": True},
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{label}*\n{_mrkdwn(value, 1_900)}"}
                    for label, value in fields
                ],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Error*\n```{error}```"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(hint, 2_900)}]},
        ],
    }


class SlackNotifier:
    """Posts to a Slack (or Mattermost, Rocket.Chat …) incoming webhook.

    The URL is a secret of its own (it carries the token): it is never logged.
    ``channel_override``/``username`` are sent only if given (Slack ignores them
    for app webhooks; the compatible servers honour them).
    """

    channel = "slack"

    def __init__(
        self,
        webhook_url: str,
        *,
        timeout: float | timedelta = 5.0,
        retries: int = 3,
        backoff: float | timedelta = 0.5,
        max_backoff: float | timedelta = 30.0,
        channel_override: str | None = None,
        username: str | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.url = _check_url(webhook_url, "SlackNotifier webhook_url")
        self._retrying = _Retrying(
            retries=retries, backoff=backoff, max_backoff=max_backoff, timeout=timeout, sleep=sleep
        )
        self._extra = {
            key: value
            for key, value in (("channel", channel_override), ("username", username))
            if value
        }
        self.name = _safe_name("slack", webhook_url)

    def __repr__(self) -> str:
        return f"SlackNotifier({self.name!r})"

    def __call__(self, notification: Notification, /) -> None:
        body = _json({**slack_payload(notification), **self._extra})
        _post(
            self.name,
            self.url,
            body,
            lambda: {"Content-Type": "application/json", "User-Agent": _USER_AGENT},
            self._retrying,
        )


class EmailNotifier:
    """Sends a plain-text email over SMTP (``smtplib``).

    ``starttls=True`` upgrades a plain connection; ``use_ssl=True`` connects with TLS
    from the start (port 465). ``username``/``password`` log in when given.
    Disconnections and 4xx replies are retried; 5xx replies are not.
    """

    channel = "email"

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str,
        recipients: Sequence[str] | str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_ssl: bool = False,
        timeout: float | timedelta = 10.0,
        retries: int = 2,
        backoff: float | timedelta = 1.0,
        max_backoff: float | timedelta = 30.0,
        subject_prefix: str = "[agentkeel]",
        ssl_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ConfigurationError(f"EmailNotifier host must be a host name, got {host!r}")
        self.port = check.count(port, "EmailNotifier port")
        self.host = host
        self.recipients = check.names(recipients, "EmailNotifier recipients")
        if not self.recipients or not all("@" in r for r in self.recipients):
            raise ConfigurationError(
                f"EmailNotifier recipients must be email addresses, got {recipients!r}"
            )
        if not isinstance(sender, str) or "@" not in sender:
            raise ConfigurationError(f"EmailNotifier sender must be an address, got {sender!r}")
        if (username is None) != (password is None):
            raise ConfigurationError("EmailNotifier needs both username and password, or neither")
        if starttls and use_ssl:
            raise ConfigurationError("EmailNotifier: choose starttls or use_ssl, not both")
        self.sender = sender
        self._username = username
        self._password = password
        self._starttls = check.flag(starttls, "starttls")
        self._ssl = check.flag(use_ssl, "use_ssl")
        self._context = ssl_context
        self._subject_prefix = subject_prefix
        self._retrying = _Retrying(
            retries=retries, backoff=backoff, max_backoff=max_backoff, timeout=timeout, sleep=sleep
        )
        self.name = f"email {host}:{port}"

    def __repr__(self) -> str:
        return f"EmailNotifier({self.name!r}, recipients={list(self.recipients)!r})"

    def message(self, notification: Notification) -> EmailMessage:
        t = notification.ticket
        message = EmailMessage()
        subject = f"{self._subject_prefix} {notification.title}: {t.error_type}"
        message["Subject"] = " ".join(subject.split())[:200]
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = email.utils.formatdate(localtime=False)
        message["Message-ID"] = email.utils.make_msgid(idstring=notification.delivery_id)
        message["X-Agentkeel-Ticket"] = t.ticket_id
        message.set_content(notification.text + "\n")
        return message

    def __call__(self, notification: Notification, /) -> None:
        message = self.message(notification)
        policy = self._retrying
        last = "no attempt made"
        for attempt in range(policy.retries + 1):
            policy.attempts_made += 1
            try:
                self._send(message)
                return
            except smtplib.SMTPResponseException as exc:
                last = f"SMTP {exc.smtp_code} {exc.smtp_error!r}"
                if not 400 <= exc.smtp_code < 500:
                    raise NotificationError(
                        f"{self.name} refused the email: {last} (not retried: check the "
                        "sender, recipients and credentials)"
                    ) from None
            except smtplib.SMTPRecipientsRefused as exc:
                raise NotificationError(
                    f"{self.name} refused every recipient: {sorted(exc.recipients)}"
                ) from None
            except (smtplib.SMTPException, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < policy.retries:
                policy.pause(attempt)
        raise NotificationError(
            f"{self.name} failed after {policy.retries + 1} attempt(s): {last}; "
            "check that the mail server is up and reachable"
        )

    def _send(self, message: EmailMessage) -> None:
        timeout = self._retrying.timeout
        context = self._context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if self._ssl:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
        with smtp:
            if self._starttls:
                smtp.starttls(context=context)
            if self._username is not None and self._password is not None:
                smtp.login(self._username, self._password)
            smtp.send_message(message)
