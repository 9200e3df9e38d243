"""Reading inbound mail: DSNs and MTA notices as Postfix, Exim, Gmail, Exchange Online and
Sendmail write them, an ARF complaint as Yahoo sends it, an unsubscribe mail, replies,
and a malformed message (tests/data/inbound)."""

from __future__ import annotations

import pytest

from digest.inbound.classify import read
from digest.inbound.report import Kind, Severity, severity_of
from tests.support.inbound import SAMPLE_VERP, sample


@pytest.mark.parametrize(
    ("name", "address", "status", "words", "detected"),
    [
        (
            "postfix_hard_bounce.eml",
            "reader0@example.net",
            "5.1.1",
            "User unknown in virtual mailbox table",
            "RFC 3464",
        ),
        ("exim_hard_bounce.eml", "reader1@example.net", "5.1.1", "User unknown in local", "flufl"),
        ("gmail_hard_bounce.eml", "reader2@example.net", "5.1.1", "User unknown", "RFC 3464"),
        ("microsoft_ndr.eml", "reader3@example.net", "5.1.10", "RecipientNotFound", "RFC 3464"),
        ("sendmail_dsn_without_verp.eml", "reader6@example.net", "5.1.1", "User unknown", "RFC"),
    ],
)
def test_hard_bounces(name: str, address: str, status: str, words: str, detected: str) -> None:
    report = read(sample(name))
    assert report.kind is Kind.BOUNCE
    assert report.detected_by.startswith(detected)
    (failure,) = report.failures
    assert failure.address == address
    assert failure.severity is Severity.HARD
    assert failure.status == status
    assert words in failure.diagnostic and "\n" not in failure.diagnostic
    assert report.original.edition == "weekly/2026-W47/all"


def test_postfix_folded_diagnostic_and_returned_headers() -> None:
    report = read(sample("postfix_hard_bounce.eml"))
    (failure,) = report.failures
    assert failure.diagnostic == (
        "smtp; 550 5.1.1 <reader0@example.net>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    assert failure.action == "failed"
    assert report.sender == "MAILER-DAEMON@mail.news.example.org"
    assert report.addressed_to[0] == SAMPLE_VERP
    assert report.original.return_paths == (SAMPLE_VERP,)
    assert report.original.message_id == "<weekly.1.1@example.org>"
    assert report.original.unsubscribe_tokens[0].startswith("u1-weekly.")


def test_mailbox_full_given_up_after_retries_is_a_soft_bounce() -> None:
    (failure,) = read(sample("postfix_soft_bounce.eml")).failures
    assert (failure.severity, failure.status) == (Severity.SOFT, "4.2.2")
    assert "Mailbox full" in failure.diagnostic


def test_arf_complaint_names_our_envelope_sender_though_the_recipient_is_redacted() -> None:
    report = read(sample("arf_complaint_yahoo.eml"))
    assert report.kind is Kind.COMPLAINT and report.feedback_type == "abuse"
    assert report.original.return_paths == (SAMPLE_VERP,)
    assert report.original.recipients == ("redacted@yahoo.com",)
    assert report.original.unsubscribe_tokens[0].startswith("u6-weekly.")


def test_a_not_spam_report_is_not_a_complaint() -> None:
    raw = sample("arf_complaint_yahoo.eml", {"Feedback-Type: abuse": "Feedback-Type: not-spam"})
    assert read(raw).kind is Kind.OTHER


def test_unsubscribe_mail_carries_its_token() -> None:
    report = read(sample("mailto_unsubscribe.eml"))
    assert report.kind is Kind.UNSUBSCRIBE
    assert report.unsubscribe_token == "UNSUBSCRIBE-TOKEN"
    assert report.sender == "reader5@example.net"


@pytest.mark.parametrize("name", ["human_reply.eml", "out_of_office.eml", "malformed.eml"])
def test_replies_auto_replies_and_garbage_are_other(name: str) -> None:
    report = read(sample(name))
    assert report.kind is Kind.OTHER and not report.failures


def test_the_same_message_has_the_same_key_however_it_arrives() -> None:
    raw = sample("malformed.eml")  # no Message-ID: the body's hash
    relayed = b"Received: from relay.example.org by mx.example.org\r\n" + raw
    assert read(raw).key == read(relayed).key
    assert read(sample("postfix_hard_bounce.eml")).key.startswith("mid:<20261123080006")


def test_a_delay_warning_is_recorded_as_delayed() -> None:
    raw = sample(
        "postfix_soft_bounce.eml",
        {"Action: failed\nStatus: 4.2.2": "Action: delayed\nStatus: 4.2.2"},
    )
    (failure,) = read(raw).failures
    assert failure.severity is Severity.DELAYED


def test_a_success_report_is_not_a_bounce() -> None:
    raw = sample(
        "postfix_hard_bounce.eml",
        {"Action: failed\nStatus: 5.1.1": "Action: delivered\nStatus: 2.0.0"},
    )
    assert read(raw).kind is Kind.OTHER


@pytest.mark.parametrize(
    ("status", "action", "diagnostic", "expected"),
    [
        ("5.1.1", "failed", "", Severity.HARD),
        ("5.1.10", "failed", "", Severity.HARD),
        ("4.4.7", "failed", "", Severity.SOFT),  # given up after retries
        ("5.2.2", "failed", "", Severity.SOFT),  # mailbox full, even with a 5
        ("5.7.1", "failed", "", Severity.SOFT),  # a policy refusal of us, not of the address
        ("4.0.0", "delayed", "", Severity.DELAYED),
        (None, "failed", "smtp; 550 no such user", Severity.HARD),
        (None, "failed", "smtp; 452 try later", Severity.SOFT),
        ("2.0.0", "delivered", "", None),
    ],
)
def test_severity(
    status: str | None, action: str, diagnostic: str, expected: Severity | None
) -> None:
    assert severity_of(status, action, diagnostic) is expected
