"""The SendGrid backend, with the real `sendgrid` client, against the local contract server.

Every request body is validated by the server against SendGrid's own OpenAPI schema
and its documented limits; a request that breaks them is answered 400 and fails
these tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from digest.delivery.base import AmbiguousError, RetryableError
from digest.delivery.loop import SendOptions
from digest.delivery.message import Envelope, Post, Recipient
from digest.delivery.sendgrid import SendGridBackend
from digest.models import Delivery, DeliveryStatus
from digest.sender import SendOutcome
from subscribers.service import add_subscriber
from tests.support.sendgrid_server import Fault, SendGridServer
from tests.support.smtp_server import free_port
from tests.support.world import bulk_readers, make_world, send

FAST = SendOptions(backoff_base=0.01, backoff_cap=0.05, max_attempts=4, pause_after=3)


def _world(db_url: str, tmp_path: Path, server: SendGridServer, **env: str):  # type: ignore[no-untyped-def]
    return make_world(
        db_url,
        tmp_path,
        env={"SENDGRID_API_KEY": server.api_key, "DIGEST_SENDGRID_API_HOST": server.url, **env},
    )


def _statuses(server: SendGridServer) -> list[int | None]:
    return [r.status for r in server.requests]


def test_batches_of_1000_valid_and_personalised(
    db_url: str, tmp_path: Path, sendgrid_server: SendGridServer
) -> None:
    world = _world(db_url, tmp_path, sendgrid_server)
    bulk_readers(world.app, 2500)
    report = send(world.app, backend="sendgrid", options=FAST)
    assert report.counts.sent == 2500
    requests = sendgrid_server.requests
    assert [len(r.body["personalizations"]) for r in requests] == [1000, 1000, 500]
    assert all(r.status == 202 and not r.errors for r in requests), requests[0].errors
    body = requests[0].body
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["from"] == {"email": "news@example.org", "name": "The Weekly"}
    assert body["categories"] == ["weekly", "weekly-2026-W47"]
    messages = sendgrid_server.messages()
    assert len(messages) == 2500 and len(set(sendgrid_server.recipients())) == 2500
    with world.app.transaction() as s:
        ids = dict(s.execute(select(Delivery.email, Delivery.subscriber_id)).all())
    for m in messages[:50]:
        assert not m.unfilled
        assert m.custom_args["subscriber_id"] == str(ids[m.recipient])
        assert m.custom_args["edition_id"] == str(report.edition_id)
        assert m.headers["List-Unsubscribe"].startswith("<https://news.example.org/u/")
        assert m.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert m.headers["Message-ID"].endswith("@example.org>")
        assert m.headers["List-Id"] == '"The Weekly" <weekly.example.org>'
        unsubscribe = m.headers["List-Unsubscribe"].split(">")[0][1:]
        assert unsubscribe in (m.text or "") and unsubscribe in (m.html or "")
    with world.app.transaction() as s:
        provider_ids = set(s.scalars(select(Delivery.provider_id)))
    assert provider_ids == {r.message_id for r in requests}


def test_each_personalization_carries_only_what_differs(
    db_url: str, tmp_path: Path, sendgrid_server: SendGridServer
) -> None:
    """What every reader shares is said once per request; the web version's link is
    in the bodies already, so only the greeting and the two signed links are
    substituted per reader."""
    world = _world(db_url, tmp_path, sendgrid_server)
    bulk_readers(world.app, 3)
    report = send(world.app, backend="sendgrid", options=FAST)
    (request,) = sendgrid_server.requests
    body = request.body
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert body["custom_args"] == {"newsletter": "weekly"}
    web = "https://news.example.org/e/weekly/2026-W47/all"
    assert all(web in c["value"] for c in body["content"])
    for p in body["personalizations"]:
        assert set(p) == {"to", "substitutions", "custom_args", "headers"}  # no subject
        assert p["custom_args"]["edition_id"] == str(report.edition_id)
        assert set(p["custom_args"]) == {"edition_id", "subscriber_id"}
        assert set(p["headers"]) == {"List-Unsubscribe", "Message-ID"}
        names = {tag.split(".")[-1].strip("~") for tag in p["substitutions"]}
        assert names == {"first_name", "unsubscribe_url", "preferences_url"}


def test_rate_limit_and_server_errors_are_retried(
    db_url: str, tmp_path: Path, sendgrid_server: SendGridServer
) -> None:
    world = _world(db_url, tmp_path, sendgrid_server)
    bulk_readers(world.app, 3)
    sendgrid_server.script(
        Fault.rate_limit(retry_after=1), Fault.server_error(500), Fault.server_error(503)
    )
    report = send(world.app, backend="sendgrid", options=FAST)
    assert _statuses(sendgrid_server) == [429, 500, 503, 202]
    assert report.counts.sent == 3
    assert sorted(sendgrid_server.recipients()) == sorted(set(sendgrid_server.recipients()))


def test_retry_after_is_honoured(sendgrid_server: SendGridServer) -> None:
    backend = SendGridBackend(sendgrid_server.api_key, sendgrid_server.url)
    sendgrid_server.script(Fault.rate_limit(retry_after=7))
    with pytest.raises(RetryableError) as info:
        backend.send(_post())
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize("fault", [Fault.slow(3), Fault.drop(), Fault.drop_after_read()])
def test_no_answer_after_handing_over_is_uncertain_not_retried(
    db_url: str, tmp_path: Path, sendgrid_server: SendGridServer, fault: Fault
) -> None:
    world = _world(db_url, tmp_path, sendgrid_server, DIGEST_HTTP_TIMEOUT="0.5")
    bulk_readers(world.app, 4)
    sendgrid_server.script(fault)
    report = send(world.app, backend="sendgrid", options=FAST)
    assert len(sendgrid_server.requests) == 1  # not retried: a retry could be a second copy
    assert report.counts.uncertain == 4 and report.counts.sent == 0
    with world.app.transaction() as s:
        reasons = set(s.scalars(select(Delivery.reason)))
    assert len(reasons) == 1 and "--resend-uncertain" in reasons.pop()
    resent = send(world.app, backend="sendgrid", options=FAST, resend_uncertain=True)
    assert resent.counts.sent == 4
    copies = sendgrid_server.recipients()
    assert set(copies) == {f"bulk{i}@example.net" for i in range(4)}
    # when the provider had in fact taken the first request, the resend is a second copy
    assert len(copies) == (8 if fault.kind in ("slow", "drop_after_read") else 4)


def test_unreachable_host_is_retried_then_paused(db_url: str, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    world = make_world(
        db_url, tmp_path, env={"SENDGRID_API_KEY": "SG.x", "DIGEST_SENDGRID_API_HOST": url}
    )
    bulk_readers(world.app, 2)
    options = SendOptions(backoff_base=0.01, backoff_cap=0.01, max_attempts=2, pause_after=1)
    report = send(world.app, backend="sendgrid", options=options)
    assert report.outcome is SendOutcome.PAUSED and "cannot reach SendGrid" in (
        report.pause_reason or ""
    )
    assert report.counts.pending == 2


def test_bad_request_fails_with_sendgrid_message(
    db_url: str, tmp_path: Path, sendgrid_server: SendGridServer
) -> None:
    world = _world(db_url, tmp_path, sendgrid_server)
    bulk_readers(world.app, 2)
    sendgrid_server.script(
        Fault.reject("The from address does not match a verified Sender Identity.", "from")
    )
    report = send(world.app, backend="sendgrid", options=FAST)
    assert report.counts.failed == 2 and len(sendgrid_server.requests) == 1
    with world.app.transaction() as s:
        reason = s.scalar(select(Delivery.reason).where(Delivery.status == DeliveryStatus.FAILED))
    assert reason == (
        "SendGrid answered 400: The from address does not match a verified Sender Identity. "
        "(field: from)"
    )


def test_wrong_api_key_pauses_with_a_clear_reason(
    db_url: str, tmp_path: Path, sendgrid_server: SendGridServer
) -> None:
    world = make_world(
        db_url,
        tmp_path,
        env={"SENDGRID_API_KEY": "SG.wrong", "DIGEST_SENDGRID_API_HOST": sendgrid_server.url},
    )
    bulk_readers(world.app, 2)
    report = send(world.app, backend="sendgrid", options=FAST)
    assert report.outcome is SendOutcome.PAUSED and "check SENDGRID_API_KEY" in (
        report.pause_reason or ""
    )
    assert report.counts.pending == 2 and not sendgrid_server.accepted


def test_names_sendgrid_would_refuse_are_cleaned(
    db_url: str, tmp_path: Path, sendgrid_server: SendGridServer
) -> None:
    world = _world(db_url, tmp_path, sendgrid_server)
    with world.app.transaction() as s:
        add_subscriber(s, "smith@example.net", "weekly", name="Smith, John; Jr")
    report = send(world.app, backend="sendgrid", options=FAST)
    assert report.counts.sent == 1
    (message,) = sendgrid_server.messages()
    assert message.recipient_name == "Smith John Jr"


def _post() -> Post:
    env = Envelope(
        newsletter="weekly",
        edition_id=1,
        period="2026-W47",
        variant_key="all",
        sender="news@example.org",
        sender_name="News",
        reply_to=None,
        list_id="<weekly.example.org>",
        subject="Hello",
        html="<p>Hi</p>",
        text="Hi",
        message_nonce="0123456789abcdef01234567",
    )
    fields = {
        "first_name": "A",
        "unsubscribe_url": "https://x.example/u/t",
        "preferences_url": "https://x.example/p/t",
        "web_url": "https://x.example/e",
    }
    return Post(env, [Recipient(1, 1, "a@example.net", "A", fields)])


def test_ambiguous_error_type(sendgrid_server: SendGridServer) -> None:
    backend = SendGridBackend(sendgrid_server.api_key, sendgrid_server.url, timeout=0.3)
    sendgrid_server.script(Fault.slow(2))
    with pytest.raises(AmbiguousError, match="took the request but did not answer"):
        backend.send(_post())


def test_no_substitutions_key_when_the_bodies_hold_no_placeholder() -> None:
    """A message with real links throughout (a confirmation email) sends no empty
    ``substitutions`` object; one placeholder, one field substituted."""
    from dataclasses import replace

    from digest.delivery.sendgrid import build_payload

    post = _post()
    plain = replace(post.envelope, html="<p>https://x.test/c/1</p>", text="https://x.test/c/1")
    payload = build_payload(Post(plain, post.recipients))
    assert all("substitutions" not in p for p in payload["personalizations"])
    named = replace(plain, text="Hi ~~digest.text.first_name~~")
    payload = build_payload(Post(named, post.recipients))
    for p in payload["personalizations"]:
        assert set(p["substitutions"]) == {
            "~~digest.html.first_name~~",
            "~~digest.text.first_name~~",
        }
