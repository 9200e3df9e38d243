"""The SendGrid contract server, proved with SendGrid's own Python client.

The delivery tests trust this server to answer as SendGrid does; these tests pin that down:
valid mail is accepted and recorded, every documented limit and schema rule is a 400 naming
the field, and every scripted fault reaches the real client as it would from SendGrid.
"""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sendgrid
from python_http_client import exceptions as sg_errors
from sendgrid.helpers.mail import (
    Category,
    Content,
    CustomArg,
    From,
    Header,
    Mail,
    Personalization,
    Substitution,
    To,
)

from tests.support.sendgrid_server import (
    Fault,
    SendGridServer,
    expand,
    validate_mail_send,
)


@pytest.fixture
def server() -> Iterator[SendGridServer]:
    with SendGridServer() as srv:
        yield srv


def client(server: SendGridServer, timeout: float | None = None) -> sendgrid.SendGridAPIClient:
    sg = sendgrid.SendGridAPIClient(api_key=server.api_key, host=server.url)
    sg.client.timeout = timeout  # python_http_client passes it to urllib for every call
    return sg


def body(recipients: int = 2) -> dict[str, Any]:
    """A valid request: one personalization per recipient, with what delivery will send."""
    return {
        "from": {"email": "news@example.org", "name": "Weekly News"},
        "reply_to": {"email": "editor@example.org"},
        "subject": "Weekly digest for -name-",
        "content": [
            {"type": "text/plain", "value": "Hello -name-, unsubscribe: -unsub-"},
            {"type": "text/html", "value": "<p>Hello -name-</p><a href='-unsub-'>unsubscribe</a>"},
        ],
        "categories": ["weekly", "2026-W48"],
        "custom_args": {"newsletter": "weekly", "edition_id": "7"},
        "headers": {"List-Id": "Weekly <weekly.example.org>"},
        "personalizations": [
            {
                "to": [{"email": f"reader{i}@example.com", "name": f"Reader {i}"}],
                "substitutions": {"-name-": f"Reader {i}", "-unsub-": f"https://x.test/u/{i}"},
                "custom_args": {"subscriber_id": str(i)},
                "headers": {"List-Unsubscribe": f"<https://x.test/u/{i}>"},
            }
            for i in range(recipients)
        ],
    }


def post(server: SendGridServer, payload: Any) -> tuple[int, list[dict[str, Any]]]:
    """Send with the real client; the status and SendGrid's errors (empty on success)."""
    try:
        response = client(server).send(payload)
    except sg_errors.HTTPError as exc:
        return exc.status_code, exc.to_dict["errors"]
    return response.status_code, []


# ---------------------------------------------------------------------------
# Accepted mail


def test_mail_built_with_the_official_helper_is_accepted_and_recorded(server):
    mail = Mail(from_email=From("news@example.org", "Weekly News"), subject="Hi -name-")
    for i, name in enumerate(["Ann", "Bob"]):
        p = Personalization()
        p.add_to(To(f"{name.lower()}@example.com", name))
        p.add_substitution(Substitution("-name-", name))
        p.add_custom_arg(CustomArg("subscriber_id", str(i + 1)))
        p.add_header(Header("List-Unsubscribe", f"<https://x.test/u/{i + 1}>"))
        mail.add_personalization(p)
    mail.add_content(Content("text/plain", "Hello -name-"))
    mail.add_content(Content("text/html", "<p>Hello -name-</p>"))
    mail.add_category(Category("weekly"))
    mail.custom_arg = CustomArg("edition_id", "7")

    response = client(server).send(mail)

    assert response.status_code == 202
    assert response.body == b""
    [request] = server.requests
    assert request.accepted and request.status == 202
    assert response.headers["X-Message-Id"] == request.message_id
    assert request.headers["authorization"] == f"Bearer {server.api_key}"
    assert request.headers["user-agent"].startswith("sendgrid/")
    assert request.body == mail.get()
    # Mail.add_personalization inserts at index 0 by default: the helper reverses the order.
    bob, ann = server.messages()
    assert (ann.recipient, ann.subject, ann.text, ann.html) == (
        "ann@example.com",
        "Hi Ann",
        "Hello Ann",
        "<p>Hello Ann</p>",
    )
    assert bob.subject == "Hi Bob" and bob.text == "Hello Bob"
    assert ann.custom_args == {"edition_id": "7", "subscriber_id": "1"}
    assert bob.headers == {"List-Unsubscribe": "<https://x.test/u/2>"}
    assert ann.categories == ("weekly",)
    assert ann.unfilled == () and bob.unfilled == ()


def test_expansion_gives_each_recipient_their_own_message(server):
    payload = body(3)
    payload["personalizations"][2]["cc"] = [{"email": "boss@example.com"}]

    assert post(server, payload) == (202, [])

    messages = server.messages()
    assert server.recipients() == [
        "reader0@example.com",
        "reader1@example.com",
        "reader2@example.com",
        "boss@example.com",
    ]
    third, boss = messages[2], messages[3]
    assert third.subject == "Weekly digest for Reader 2"
    assert "https://x.test/u/2" in third.html and "-unsub-" not in third.html
    assert boss.kind == "cc" and boss.to == ("reader2@example.com",) and boss.text == third.text
    assert third.headers == {
        "List-Id": "Weekly <weekly.example.org>",
        "List-Unsubscribe": "<https://x.test/u/2>",
    }
    assert third.custom_args == {"newsletter": "weekly", "edition_id": "7", "subscriber_id": "2"}
    assert third.reply_to == "editor@example.org" and third.from_name == "Weekly News"


def test_a_placeholder_left_unfilled_for_one_recipient_is_reported(server):
    payload = body(2)
    del payload["personalizations"][1]["substitutions"]["-unsub-"]

    assert post(server, payload) == (202, [])

    first, second = server.messages()
    assert first.unfilled == ()
    assert second.unfilled == ("-unsub-",)


def test_requests_at_the_documented_limits_are_accepted(server):
    payload = body(1000)
    payload["personalizations"][0]["substitutions"] = {"-name-": "x" * 9_900, "-unsub-": "u"}
    payload["categories"] = [f"c{i}" for i in range(9)] + ["y" * 255]

    assert post(server, payload) == (202, [])
    assert len(server.messages()) == 1000


def test_gzip_bodies_are_accepted():
    with SendGridServer() as srv:
        response = httpx.post(
            f"{srv.url}/v3/mail/send",
            content=gzip.compress(json.dumps(body(1)).encode()),
            headers={"Authorization": f"Bearer {srv.api_key}", "Content-Encoding": "gzip"},
        )
        assert response.status_code == 202
        assert srv.recipients() == ["reader0@example.com"]


# ---------------------------------------------------------------------------
# Rejected mail


def test_a_missing_api_key_is_401_in_sendgrids_error_shape(server):
    response = httpx.post(f"{server.url}/v3/mail/send", json=body(1))

    assert response.status_code == 401
    assert response.json() == {
        "errors": [{"message": "authorization required", "field": None, "help": None}]
    }
    assert server.requests[0].accepted is False


def test_a_wrong_api_key_is_401_for_the_client(server):
    sg = sendgrid.SendGridAPIClient(api_key="SG.wrong", host=server.url)

    with pytest.raises(sg_errors.UnauthorizedError) as caught:
        sg.send(body(1))

    assert caught.value.status_code == 401
    assert "invalid" in caught.value.to_dict["errors"][0]["message"]
    assert server.messages() == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = payload
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = copy.deepcopy(value)

    return mutate


_DELETE = object()


def _many_personalizations(payload: dict[str, Any]) -> None:
    payload["personalizations"] = body(1001)["personalizations"]


def _many_recipients(payload: dict[str, Any]) -> None:
    p = payload["personalizations"][0]
    p["to"] = [{"email": f"t{i}@example.com"} for i in range(600)]
    p["bcc"] = [{"email": f"b{i}@example.com"} for i in range(401)]


def _html_first(payload: dict[str, Any]) -> None:
    payload["content"].reverse()


def _no_subject_for_one(payload: dict[str, Any]) -> None:
    del payload["subject"]
    payload["personalizations"][0]["subject"] = "Only the first has one"


LIMIT_CASES = {
    "more than 1,000 personalizations": (_many_personalizations, "personalizations"),
    "more than 1,000 recipients": (_many_recipients, "personalizations"),
    "an address twice in a personalization": (
        _set("personalizations.0.bcc", [{"email": "READER0@example.com"}]),
        "personalizations.0",
    ),
    "substitutions over 10,000 bytes": (
        _set("personalizations.1.substitutions.-name-", "x" * 10_000),
        "personalizations.1.substitutions",
    ),
    "text/html before text/plain": (_html_first, "content"),
    "no content": (_set("content", _DELETE), "content"),
    "a personalization without a subject": (_no_subject_for_one, "subject"),
    "no from": (_set("from", _DELETE), "from.email"),
    "from without email": (_set("from", {"name": "No Address"}), "from.email"),
    "from email not an address": (_set("from.email", "news at example.org"), "from.email"),
    "to address not an address": (
        _set("personalizations.0.to.0.email", "reader0@localhost"),
        "personalizations.0.to.0.email",
    ),
    "empty to": (_set("personalizations.0.to", []), "personalizations.0.to"),
    "a comma in a recipient name": (
        _set("personalizations.0.to.0.name", "Doe, Jane"),
        "personalizations.0.to.0.name",
    ),
    "custom_args over 10,000 bytes": (
        _set("custom_args.padding", "x" * 10_000),
        "custom_args",
    ),
    "merged custom_args over 10,000 bytes": (
        _set("personalizations.1.custom_args.padding", "x" * 9_950),
        "personalizations.1.custom_args",
    ),
    "a non-string custom_arg": (
        _set("personalizations.0.custom_args.subscriber_id", 1),
        "personalizations.0.custom_args.subscriber_id",
    ),
    "11 categories": (_set("categories", [f"c{i}" for i in range(11)]), "categories"),
    "a category of 256 characters": (_set("categories.1", "c" * 256), "categories.1"),
    "a reserved header in a personalization": (
        _set("personalizations.0.headers.Reply-To", "x@example.com"),
        "personalizations.0.headers.Reply-To",
    ),
    "a reserved header at the top": (_set("headers.X-SG-ID", "1"), "headers.X-SG-ID"),
    "a non-string header value": (_set("headers.X-Count", 3), "headers.X-Count"),
    "reply_to and reply_to_list": (
        _set("reply_to_list", [{"email": "a@example.org"}]),
        "reply_to_list",
    ),
}

SCHEMA_CASES = {
    "personalizations not an array": (_set("personalizations", {}), "personalizations"),
    "no personalizations": (_set("personalizations", _DELETE), "personalizations"),
    "a personalization without to": (
        _set("personalizations.0.to", _DELETE),
        "personalizations.0.to",
    ),
    "an empty subject": (_set("subject", ""), "subject"),
    "a content block without value": (_set("content.0.value", _DELETE), "content.0.value"),
    "an empty content value": (_set("content.1.value", ""), "content.1.value"),
    "send_at as a string": (_set("send_at", "tomorrow"), "send_at"),
    "a substitution that is not a string": (
        _set("personalizations.0.substitutions.-name-", 5),
        "personalizations.0.substitutions.-name-",
    ),
    "top-level custom_args as a string": (_set("custom_args", "edition=7"), "custom_args"),
    "an attachment without filename": (
        _set("attachments", [{"content": "aGk=", "type": "text/plain"}]),
        "attachments.0.filename",
    ),
    "an unknown attachment disposition": (
        _set("attachments", [{"content": "aGk=", "filename": "a.txt", "disposition": "x"}]),
        "attachments.0.disposition",
    ),
    "asm without group_id": (_set("asm", {"groups_to_display": [1]}), "asm.group_id"),
    "an ip_pool_name of one character": (_set("ip_pool_name", "p"), "ip_pool_name"),
    "duplicate categories": (_set("categories", ["a", "a"]), "categories"),
    "a to entry that is not an object": (
        _set("personalizations.0.to.0", "reader0@example.com"),
        "personalizations.0.to.0",
    ),
}


@pytest.mark.parametrize(
    ("mutate", "field"),
    list((LIMIT_CASES | SCHEMA_CASES).values()),
    ids=list((LIMIT_CASES | SCHEMA_CASES).keys()),
)
def test_each_violation_is_a_400_naming_the_field(server, mutate, field):
    payload = body(2)
    mutate(payload)

    status, errors = post(server, payload)

    assert status == 400
    assert field in [e["field"] for e in errors], errors
    assert all(set(e) == {"message", "field", "help"} and e["message"] for e in errors)
    [request] = server.requests
    assert request.status == 400 and not request.accepted and request.errors == errors
    assert server.messages() == []


def test_the_validator_can_be_used_directly():
    assert validate_mail_send(body(2)) == []
    assert [e["field"] for e in validate_mail_send({"personalizations": "x"})] == [
        "from.email",
        "content",
        "personalizations",
    ]


def test_a_body_that_is_not_json_is_400(server):
    response = httpx.post(
        f"{server.url}/v3/mail/send",
        content=b"{not json",
        headers={"Authorization": f"Bearer {server.api_key}"},
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] is None
    assert server.requests[0].body is None and server.requests[0].raw == b"{not json"


def test_other_paths_and_methods_are_404_and_405(server):
    assert httpx.post(f"{server.url}/v3/mail/batch", json={}).status_code == 404
    assert httpx.get(f"{server.url}/v3/mail/send").status_code == 405


def test_a_body_over_the_size_limit_is_413():
    with SendGridServer(max_body_bytes=1_000) as srv:
        with pytest.raises(sg_errors.PayloadTooLargeError):
            client(srv).send(body(20))
        assert srv.requests[0].status == 413


# ---------------------------------------------------------------------------
# Faults


def test_rate_limit_reaches_the_client_with_retry_after_then_requests_pass(server):
    server.script(Fault.rate_limit(retry_after=3))
    sg = client(server)

    with pytest.raises(sg_errors.TooManyRequestsError) as caught:
        sg.send(body(1))
    assert caught.value.status_code == 429
    assert caught.value.headers["Retry-After"] == "3"
    assert caught.value.headers["X-RateLimit-Remaining"] == "0"

    assert sg.send(body(1)).status_code == 202
    assert [(r.status, r.accepted, r.fault) for r in server.requests] == [
        (429, False, "rate_limit"),
        (202, True, None),
    ]
    assert server.recipients() == ["reader0@example.com"]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, sg_errors.InternalServerError),
        (502, sg_errors.HTTPError),
        (503, sg_errors.ServiceUnavailableError),
    ],
)
def test_server_errors_reach_the_client_and_accept_nothing(server, status, error):
    server.script(Fault.server_error(status))

    with pytest.raises(error) as caught:
        client(server).send(body(1))

    assert caught.value.status_code == status
    assert caught.value.to_dict["errors"][0]["message"]
    assert server.requests[0].status == status and server.messages() == []


def test_a_scripted_rejection_and_a_413_reach_the_client(server):
    server.script(Fault.reject("The from address does not match a verified Sender", "from"))
    server.script(Fault.too_large())
    sg = client(server)

    with pytest.raises(sg_errors.BadRequestsError) as rejected:
        sg.send(body(1))
    with pytest.raises(sg_errors.PayloadTooLargeError):
        sg.send(body(1))

    assert rejected.value.to_dict["errors"][0]["field"] == "from"
    assert "verified Sender" in rejected.value.to_dict["errors"][0]["message"]
    assert server.messages() == []


def test_a_slow_reply_times_the_client_out_but_the_mail_was_accepted(server):
    server.script(Fault.slow(5))

    with pytest.raises(TimeoutError):
        client(server, timeout=0.2).send(body(1))

    [request] = server.requests
    assert request.fault == "slow" and request.accepted
    assert server.recipients() == ["reader0@example.com"]


def test_the_client_timeout_can_be_given_per_call(server):
    server.script(Fault.slow(5))
    sg = client(server)

    with pytest.raises(TimeoutError):
        sg.client.mail.send.post(request_body=body(1), timeout=0.2)


def test_a_dropped_connection_is_a_connection_error_and_nothing_is_sent(server):
    server.script(Fault.drop())

    with pytest.raises(ConnectionError):
        client(server).send(body(1))

    [request] = server.requests
    assert request.status is None and not request.accepted and request.fault == "drop"
    assert request.body == body(1)  # what arrived is still on record
    assert server.messages() == []


def test_a_drop_after_reading_is_a_connection_error_but_the_mail_goes_out(server):
    server.script(Fault.drop_after_read())

    with pytest.raises(ConnectionError):
        client(server).send(body(2))

    [request] = server.requests
    assert request.status is None and request.accepted and request.fault == "drop_after_read"
    assert server.recipients() == ["reader0@example.com", "reader1@example.com"]


def test_faults_are_consumed_in_order_then_service_is_normal(server):
    server.script(Fault.rate_limit(1), Fault.server_error(500), Fault.drop())
    sg = client(server)
    outcomes = []
    for _ in range(4):
        try:
            outcomes.append(sg.send(body(1)).status_code)
        except sg_errors.HTTPError as exc:
            outcomes.append(exc.status_code)
        except ConnectionError:
            outcomes.append("dropped")

    assert outcomes == [429, 500, "dropped", 202]
    assert server.pending_faults == []
    assert len(server.accepted) == 1


def test_an_invalid_request_is_still_rejected_when_dropped_after_reading(server):
    server.script(Fault.drop_after_read())
    payload = body(1)
    del payload["from"]

    with pytest.raises(ConnectionError):
        client(server).send(payload)

    assert not server.requests[0].accepted and server.messages() == []


def test_expand_ignores_requests_that_were_not_accepted(server):
    server.script(Fault.server_error(500))
    with pytest.raises(sg_errors.InternalServerError):
        client(server).send(body(1))

    assert expand(server.requests[0]) == []
