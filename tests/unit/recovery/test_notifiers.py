"""Notifiers against real servers on loopback: a signed webhook, a Slack-style webhook, SMTP."""

from __future__ import annotations

import email
import email.policy
import json
import time
from email.message import EmailMessage
from typing import Any

import pytest
from _notify_servers import Mailbox, Receiver, free_port, smtp_server

from agentkeel import ConfigurationError
from agentkeel.recovery import (
    EmailNotifier,
    EscalationLevel,
    Notification,
    NotificationError,
    Notifier,
    SlackNotifier,
    Ticket,
    TicketStatus,
    WebhookNotifier,
    sign_payload,
    slack_payload,
    verify_signature,
)
from agentkeel.recovery._notifiers import build_notification

SECRET = "s3cret-shared-with-the-receiver"


def make_ticket(**changes: Any) -> Ticket:
    values: dict[str, Any] = {
        "ticket_id": "esc-0123456789ab",
        "level": EscalationLevel.HUMAN_INTERVENTION,
        "priority": 62,
        "status": TicketStatus.OPEN,
        "error_type": "ConnectionError",
        "error_message": "upstream <api> & friends refused",
        "category": "network",
        "severity": "high",
        "fingerprint": "abc123abc123",
        "created_at": 1.7e9,
        "updated_at": 1.7e9,
        "deadline": 1.7e9 + 600,
        "agent_id": "agent-7",
        "task_id": "book-flight",
        "recovery_attempts": 3,
    }
    values.update(changes)
    return Ticket(**values)


def notification(kind: str = "created", **changes: Any) -> Notification:
    return build_notification(kind, make_ticket(**changes), delivery_id="dlv-0001")


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# ------------------------------------------------------------------ webhook


def test_webhook_is_received_with_a_verifiable_signature() -> None:
    with Receiver() as server:
        notifier = WebhookNotifier(f"{server.url}/hooks/keel", secret=SECRET)
        started = time.perf_counter()
        notifier(notification())
        latency = time.perf_counter() - started
        (request,) = server.wait_for(1)
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert request.path == "/hooks/keel"
    assert headers["content-type"] == "application/json"
    assert headers["x-agentkeel-event"] == "created"
    assert headers["x-agentkeel-delivery"] == "dlv-0001"
    timestamp, signature = headers["x-agentkeel-timestamp"], headers["x-agentkeel-signature"]
    assert signature.startswith("sha256=")
    assert verify_signature(SECRET, request.body, timestamp, signature)
    assert not verify_signature("wrong", request.body, timestamp, signature)
    assert not verify_signature(SECRET, request.body + b" ", timestamp, signature)
    payload = request.json()
    assert payload["kind"] == "created" and payload["delivery_id"] == "dlv-0001"
    assert payload["ticket"]["ticket_id"] == "esc-0123456789ab"
    assert payload["ticket"]["level"] == "human_intervention"
    assert "changes" not in payload["ticket"]
    assert "keel escalations ack esc-0123456789ab" in payload["text"]
    assert latency < 2.0


def test_webhook_retries_server_errors_with_backoff_and_signs_each_attempt() -> None:
    sleeps = Sleeps()
    with Receiver(fail_first=2) as server:
        notifier = WebhookNotifier(server.url, secret=SECRET, retries=3, sleep=sleeps)
        notifier(notification())
        (request,) = server.wait_for(1)
        assert server.attempts == 3
    assert sleeps == [0.5, 1.0]
    assert verify_signature(
        SECRET,
        request.body,
        request.headers["X-Agentkeel-Timestamp"],
        request.headers["X-Agentkeel-Signature"],
    )


def test_webhook_gives_up_with_an_error_that_hides_the_secret_and_path() -> None:
    sleeps = Sleeps()
    with Receiver(fail_first=100, fail_status=503) as server:
        notifier = WebhookNotifier(
            f"{server.url}/T0KEN/path", secret=SECRET, retries=2, backoff=1, sleep=sleeps
        )
        with pytest.raises(NotificationError) as caught:
            notifier(notification())
        assert server.attempts == 3
    message = str(caught.value)
    assert f"webhook 127.0.0.1:{server.port} failed after 3 attempt(s): HTTP 503" in message
    assert "T0KEN" not in message and SECRET not in message and SECRET not in repr(notifier)
    assert sleeps == [1.0, 2.0]


def test_webhook_does_not_retry_a_client_error() -> None:
    with Receiver(fail_first=100, fail_status=401) as server:
        notifier = WebhookNotifier(server.url, secret=SECRET, sleep=Sleeps())
        with pytest.raises(NotificationError, match="refused the notification: HTTP 401"):
            notifier(notification())
        assert server.attempts == 1


def test_webhook_honours_retry_after_up_to_max_backoff() -> None:
    sleeps = Sleeps()
    with Receiver(fail_first=2, fail_status=429) as server:
        server.fail_headers = {"Retry-After": "7"}
        WebhookNotifier(server.url, secret=SECRET, max_backoff=5, sleep=sleeps)(notification())
        server.wait_for(1)
    assert sleeps == [5.0, 5.0]


def test_webhook_retries_a_refused_connection() -> None:
    sleeps = Sleeps()
    notifier = WebhookNotifier(
        f"http://127.0.0.1:{free_port()}/", secret=SECRET, retries=1, timeout=2, sleep=sleeps
    )
    with pytest.raises(NotificationError, match=r"failed after 2 attempt\(s\)"):
        notifier(notification())
    assert sleeps == [0.5]


def test_verify_signature_rejects_stale_or_malformed_timestamps() -> None:
    body = b'{"a":1}'
    signature = sign_payload(SECRET, body, 1_000)
    assert verify_signature(SECRET, body, "1000", signature, now=1_100)
    assert verify_signature(SECRET, body, 1000, signature.removeprefix("sha256="), now=1_000)
    assert not verify_signature(SECRET, body, "1000", signature, now=1_400)
    assert not verify_signature(SECRET, body, "soon", signature, now=1_000)
    assert verify_signature(SECRET.encode(), body, "1000", signature, now=1_000, tolerance=10)


@pytest.mark.parametrize(
    ("url", "secret", "message"),
    [
        ("ftp://example.com/x", SECRET, "must be an http:// or https:// URL"),
        ("http:///nohost", SECRET, "has no host"),
        ("https://example.com/x", "", "needs a non-empty secret"),
    ],
)
def test_webhook_settings_are_checked(url: str, secret: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WebhookNotifier(url, secret=secret)


# -------------------------------------------------------------------- slack


def test_slack_payload_is_received_and_follows_the_incoming_webhook_schema() -> None:
    with Receiver() as server:
        SlackNotifier(f"{server.url}/services/T000/B000/XXXX", username="keel")(notification())
        (request,) = server.wait_for(1)
    payload = request.json()
    assert payload["username"] == "keel"
    check_slack_schema(payload)
    text = json.dumps(payload)
    assert "&lt;api&gt; &amp; friends" in text  # user text escaped for mrkdwn
    fields = {f["text"].split("\n")[0]: f["text"] for f in payload["blocks"][1]["fields"]}
    assert fields["*Level*"].endswith("human_intervention")
    assert fields["*Priority*"].endswith("62/100")
    assert "`esc-0123456789ab`" in fields["*Ticket*"]
    assert "keel escalations ack esc-0123456789ab" in payload["blocks"][3]["elements"][0]["text"]


def check_slack_schema(payload: dict[str, Any]) -> None:
    """Slack's documented limits for incoming webhooks with Block Kit."""
    assert isinstance(payload["text"], str) and 0 < len(payload["text"]) <= 3_000
    blocks = payload["blocks"]
    assert isinstance(blocks, list) and 0 < len(blocks) <= 50
    for block in blocks:
        kind = block["type"]
        assert kind in {"header", "section", "context", "divider", "actions"}
        if kind == "header":
            assert block["text"]["type"] == "plain_text" and len(block["text"]["text"]) <= 150
        if kind == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert block["text"]["type"] == "mrkdwn" and len(block["text"]["text"]) <= 3_000
            for item in block.get("fields", []):
                assert item["type"] in {"mrkdwn", "plain_text"} and len(item["text"]) <= 2_000
            assert len(block.get("fields", [])) <= 10
        if kind == "context":
            assert 0 < len(block["elements"]) <= 10


def test_slack_payload_of_a_resolved_ticket_and_of_huge_errors() -> None:
    resolved = notification(
        "resolved", status=TicketStatus.RESOLVED, resolution="restarted the proxy"
    )
    payload = slack_payload(resolved)
    check_slack_schema(payload)
    assert "Resolved: restarted the proxy" in payload["blocks"][3]["elements"][0]["text"]
    check_slack_schema(slack_payload(notification(error_message="x" * 100_000)))


# -------------------------------------------------------------------- email


def test_email_is_received_by_a_real_smtp_server() -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        notifier = EmailNotifier(
            "127.0.0.1",
            port,
            sender="keel@example.com",
            recipients=["oncall@example.com", "lead@example.com"],
            timeout=5,
        )
        started = time.perf_counter()
        notifier(notification("escalated"))
        latency = time.perf_counter() - started
    ((sender, recipients, content),) = mailbox.messages
    assert sender == "keel@example.com"
    assert recipients == ["oncall@example.com", "lead@example.com"]
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    subject = str(message["Subject"]).strip()  # long subjects are folded onto a new line
    assert subject.startswith("[agentkeel] Escalated: esc-0123456789ab (human intervention)")
    assert message["X-Agentkeel-Ticket"] == "esc-0123456789ab"
    body = message.get_content()
    assert "Error:    ConnectionError: upstream <api> & friends refused" in body
    assert "keel escalations ack esc-0123456789ab" in body
    assert latency < 5.0


def test_email_retries_a_temporary_refusal_not_a_permanent_one() -> None:
    sleeps = Sleeps()
    mailbox = Mailbox(reject_first=1)
    with smtp_server(mailbox) as port:
        EmailNotifier(
            "127.0.0.1", port, sender="k@example.com", recipients="a@example.com", sleep=sleeps
        )(notification())
    assert len(mailbox.messages) == 1 and sleeps == [1.0]
    mailbox = Mailbox(reject_first=5, reject_code="554 no thanks")
    with smtp_server(mailbox) as port:
        notifier = EmailNotifier(
            "127.0.0.1", port, sender="k@example.com", recipients="a@example.com", sleep=sleeps
        )
        with pytest.raises(NotificationError, match="refused the email: SMTP 554"):
            notifier(notification())
    assert mailbox.attempts == 1


def test_email_to_a_dead_server_gives_up() -> None:
    notifier = EmailNotifier(
        "127.0.0.1",
        free_port(),
        sender="k@example.com",
        recipients=["a@example.com"],
        retries=1,
        timeout=2,
        sleep=Sleeps(),
    )
    with pytest.raises(NotificationError, match=r"failed after 2 attempt\(s\)"):
        notifier(notification())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"recipients": ["nobody"]}, "recipients must be email addresses"),
        ({"sender": "me"}, "sender must be an address"),
        ({"username": "u"}, "both username and password"),
        ({"starttls": True, "use_ssl": True}, "choose starttls or use_ssl"),
        ({"port": 0}, "port must be an integer >= 1"),
    ],
)
def test_email_settings_are_checked(settings: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"sender": "k@example.com", "recipients": ["a@example.com"]}
    values.update(settings)
    port = values.pop("port", 25)
    with pytest.raises(ConfigurationError, match=message):
        EmailNotifier("localhost", port, **values)


def test_a_plain_function_is_a_notifier() -> None:
    seen: list[Notification] = []

    def notify(n: Notification) -> None:
        seen.append(n)

    assert isinstance(notify, Notifier)
    notify(notification())
    assert seen[0].title == "New escalation: esc-0123456789ab (human intervention)"
