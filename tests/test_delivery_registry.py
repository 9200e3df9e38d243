"""digest.delivery.registry: backends by name, each built from its own settings, and
which backend a send uses (and why) when DIGEST_BACKEND is set, unset, or ambiguous."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.cli._common import backend_option
from digest.config import Settings, load_settings
from digest.delivery.outbox import OutboxBackend
from digest.delivery.registry import BACKENDS, backend_class, names, resolve_backend
from digest.delivery.sendgrid import SendGridBackend
from digest.delivery.smtp import SMTPBackend
from digest.errors import ConfigError
from tests.support.world import World, make_world

SMTP_URL = "smtp://user:pw@mail.example.org:587"


#: What a real send needs: an https base URL and a secret key of its own.
SAFE = {"base_url": "https://news.example.org", "secret_key": "a-long-random-production-secret"}


def settings(**values: Any) -> Settings:
    return Settings(**{**SAFE, **values})


def test_every_name_maps_to_its_backend_class() -> None:
    assert names() == ("outbox", "smtp", "sendgrid")
    assert [backend_class(n) for n in BACKENDS] == [OutboxBackend, SMTPBackend, SendGridBackend]
    assert all(backend_class(n).name == n for n in BACKENDS)


def test_the_cli_offers_the_registry_names() -> None:
    @backend_option
    @click.command()
    def probe(backend: str | None) -> None: ...

    (option,) = [p for p in probe.params if p.name == "backend"]
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == names()


def test_an_unknown_name_is_one_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"^--backend: unknown backend 'pigeon'; use one of "):
        resolve_backend(settings(), "pigeon")
    with pytest.raises(ConfigError) as caught:
        resolve_backend(settings(backend="carrier-pigeon"))
    assert str(caught.value) == (
        "DIGEST_BACKEND: unknown backend 'carrier-pigeon'; use one of outbox, smtp, sendgrid"
    )


def test_each_backend_builds_itself_from_its_own_settings(tmp_path: Path) -> None:
    s = settings(
        outbox_dir=tmp_path / "box",
        smtp_url="smtps://ann:secret@mail.example.org:465?timeout=7",
        sendgrid_api_key="SG.key",
        sendgrid_api_host="https://api.eu.sendgrid.com/",
        http_timeout=9,
    )
    outbox = OutboxBackend.from_settings(s)
    assert outbox.directory == tmp_path / "box"
    smtp = SMTPBackend.from_settings(s)
    assert (smtp.settings.host, smtp.settings.port, smtp.settings.implicit_tls) == (
        "mail.example.org",
        465,
        True,
    )
    assert (smtp.settings.username, smtp.settings.timeout) == ("ann", 7.0)
    sendgrid = SendGridBackend.from_settings(s)
    assert sendgrid.host == "https://api.eu.sendgrid.com/"
    assert sendgrid.client.client.timeout == 9


def test_a_backend_missing_its_setting_names_it() -> None:
    with pytest.raises(ConfigError, match="DIGEST_SMTP_URL is not set"):
        SMTPBackend.from_settings(settings())
    with pytest.raises(ConfigError, match="SENDGRID_API_KEY is not set"):
        SendGridBackend.from_settings(settings())


@pytest.mark.parametrize(
    ("values", "requested", "name", "reason"),
    [
        ({}, None, "outbox", "the default: DIGEST_BACKEND is unset and no provider's settings"),
        (
            {"smtp_url": SMTP_URL},
            None,
            "smtp",
            "DIGEST_BACKEND is unset and DIGEST_SMTP_URL is set",
        ),
        (
            {"sendgrid_api_key": "SG.x"},
            None,
            "sendgrid",
            "DIGEST_BACKEND is unset and SENDGRID_API_KEY is set",
        ),
        (
            {"backend": "outbox", "smtp_url": SMTP_URL},
            None,
            "outbox",
            "DIGEST_BACKEND=outbox; DIGEST_SMTP_URL is set but only used with DIGEST_BACKEND=smtp",
        ),
        ({"backend": "smtp", "smtp_url": SMTP_URL}, None, "smtp", "DIGEST_BACKEND=smtp"),
        (
            {"backend": "smtp", "smtp_url": SMTP_URL, "sendgrid_api_key": "SG.x"},
            "outbox",
            "outbox",
            "--backend outbox",
        ),
        # blank values, as in .env.example, are unset
        ({"backend": "", "sendgrid_api_key": ""}, None, "outbox", "the default: "),
    ],
)
def test_which_backend_and_why(
    values: dict[str, Any], requested: str | None, name: str, reason: str
) -> None:
    choice = resolve_backend(settings(**values), requested)
    assert choice.name == name
    assert choice.reason.startswith(reason)
    assert str(choice) == f"{name} ({choice.reason})"


def test_two_providers_and_no_choice_is_an_error_saying_how_to_choose() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_backend(settings(smtp_url=SMTP_URL, sendgrid_api_key="SG.x"))
    assert str(caught.value) == (
        "DIGEST_BACKEND is unset and both DIGEST_SMTP_URL and SENDGRID_API_KEY are set; "
        "set DIGEST_BACKEND=smtp or DIGEST_BACKEND=sendgrid to say which one sends"
    )


def test_a_blank_digest_backend_in_the_environment_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGEST_BACKEND", "")
    assert load_settings().backend is None


def _cli_world(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> World:
    world = make_world(db_url, tmp_path, readers=2, env=env)
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    return world


def test_digest_send_goes_through_smtp_when_only_its_url_is_set(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_server: Any
) -> None:
    world = _cli_world(sqlite_url, tmp_path, monkeypatch, DIGEST_SMTP_URL=smtp_server.url)
    out = CliRunner().invoke(cli, ["send", "weekly", "--as-of", "2026-11-23"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "backend: smtp (DIGEST_BACKEND is unset and DIGEST_SMTP_URL is set)" in text
    assert sorted(r.rcpt_tos[0] for r in smtp_server.sink.received) == [
        "reader0@example.net",
        "reader1@example.net",
    ]
    assert not world.outbox.exists()


def test_digest_send_says_why_it_used_the_outbox(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _cli_world(
        sqlite_url, tmp_path, monkeypatch, DIGEST_BACKEND="outbox", DIGEST_SMTP_URL=SMTP_URL
    )
    out = CliRunner().invoke(cli, ["send", "weekly", "--as-of", "2026-11-23"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert (
        "backend: outbox (DIGEST_BACKEND=outbox; DIGEST_SMTP_URL is set but only used with "
        "DIGEST_BACKEND=smtp)"
    ) in text
    files = sorted(world.outbox.rglob("*.eml"))
    assert len(files) == 2
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_an_unknown_digest_backend_stops_a_send_with_one_line(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _cli_world(sqlite_url, tmp_path, monkeypatch, DIGEST_BACKEND="carrier-pigeon")
    for args in (["send", "weekly"], ["send-test", "weekly", "--to", "ed@example.org"]):
        out = CliRunner().invoke(cli, args)
        assert out.exit_code == 2, out.output
        assert out.output == (
            "error: DIGEST_BACKEND: unknown backend 'carrier-pigeon'; "
            "use one of outbox, smtp, sendgrid\n"
        )
    assert not world.outbox.exists()


@pytest.mark.parametrize("name", ["smtp", "sendgrid"])
def test_a_real_send_needs_https_links_and_a_secret_of_its_own(name: str) -> None:
    keys = {"smtp_url": SMTP_URL, "sendgrid_api_key": "SG.x"}
    assert backend_class(name).delivers_mail
    with pytest.raises(ConfigError) as plain:
        resolve_backend(settings(base_url="http://news.example.org", **keys), name)
    assert str(plain.value).startswith(
        f"DIGEST_BASE_URL is http://news.example.org: {name} really emails readers, and the "
        "links in its messages (List-Unsubscribe, RFC 8058) must be https; set DIGEST_BASE_URL "
        "to the https address of `digest serve`"
    )
    with pytest.raises(ConfigError) as default:
        resolve_backend(Settings(base_url="https://news.example.org", **keys), name)
    assert str(default.value).startswith(
        f"DIGEST_SECRET_KEY is the development default: {name} really emails readers, whose "
        "links it signs; set DIGEST_SECRET_KEY to a long random value"
    )
    with pytest.raises(ConfigError) as both:
        resolve_backend(Settings(**keys), name)
    assert "DIGEST_BASE_URL is http://127.0.0.1:8000" in str(both.value)
    assert "DIGEST_SECRET_KEY is the development default" in str(both.value)
    # a dry run sends nothing, so it may look
    assert resolve_backend(Settings(**keys), name, sending=False).name == name


def test_the_outbox_may_keep_http_and_the_development_secret() -> None:
    assert not backend_class("outbox").delivers_mail
    assert resolve_backend(Settings()).name == "outbox"
    assert resolve_backend(Settings(), "outbox").name == "outbox"


def test_every_command_that_emails_refuses_unsafe_links_before_doing_anything(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_server: Any
) -> None:
    world = _cli_world(
        sqlite_url,
        tmp_path,
        monkeypatch,
        DIGEST_SMTP_URL=smtp_server.url,
        DIGEST_BASE_URL="http://news.example.org",
    )
    for args in (
        ["send", "weekly", "--as-of", "2026-11-23"],
        ["send-test", "weekly", "--to", "ed@example.org", "--as-of", "2026-11-23"],
        ["schedule", "run", "weekly", "--as-of", "2026-11-23T08:00"],
        ["scheduler", "--once"],
        ["worker", "--once"],
    ):
        out = CliRunner().invoke(cli, args)
        assert out.exit_code == 2, (args, out.output)
        assert out.output.startswith("error: DIGEST_BASE_URL is http://news.example.org: smtp "), (
            args,
            out.output,
        )
        assert "Traceback" not in out.output
    assert smtp_server.sink.received == []
    from digest.models import Edition, SchedulerRun

    with world.app.sessions() as s:
        assert s.query(Edition).count() == 0 and s.query(SchedulerRun).count() == 0
    # a dry run only counts: it may go ahead
    dry = CliRunner().invoke(cli, ["send", "weekly", "--as-of", "2026-11-23", "--dry-run"])
    assert dry.exit_code == 0, dry.output
