"""The bundled sample publication's mail, made as a user makes it: the `digest` commands.

``sample_mail(root)`` ingests the sample, imports its twelve readers, sends the
2026-W47 edition to the outbox (one message per reader, six variants), sends a test
copy and a confirmation email, and returns every message's path, named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from digest.app import App
from digest.cli import cli
from digest.config import SAMPLE_CONFIG, SAMPLE_DIR

AS_OF = "2026-11-23"
#: Where a real publication would serve its web app: links are https.
BASE_URL = "https://news.publicsector-digital.example"


@dataclass(frozen=True)
class SampleMail:
    root: Path
    env: dict[str, str]
    #: One edition message per variant (the first reader of each), by variant key.
    editions: dict[str, Path]
    test_copy: Path
    confirmation: Path
    welcome: Path

    def all(self) -> dict[str, Path]:
        """Every message by name: ``edition KEY`` (each variant), ``test copy``,
        ``confirmation``, ``welcome``."""
        named = {f"edition {key}": path for key, path in self.editions.items()}
        return {
            **named,
            "test copy": self.test_copy,
            "confirmation": self.confirmation,
            "welcome": self.welcome,
        }


def _run(env: dict[str, str], *args: str) -> None:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, f"digest {' '.join(args)}:\n{result.output}"


def sample_mail(root: Path) -> SampleMail:
    outbox = root / "outbox"
    env = {
        "DIGEST_DATABASE_URL": f"sqlite:///{root / 'sample.db'}",
        "DIGEST_CONFIG": str(SAMPLE_CONFIG),
        "DIGEST_TEMPLATES": "",
        "DIGEST_OUTBOX_DIR": str(outbox),
        "DIGEST_BASE_URL": BASE_URL,
        "DIGEST_SECRET_KEY": "a-long-random-secret-for-the-sample-mail-tests",
        "DIGEST_BACKEND": "outbox",
    }
    _run(env, "ingest")
    _run(env, "lists", "create", "weekly")
    _run(env, "subscribers", "import", str(SAMPLE_DIR / "subscribers.csv"), "--list", "weekly")
    _run(env, "send", "weekly", "--as-of", AS_OF, "--backend", "outbox")
    _run(
        env, "send-test", "weekly", "--to", "editor@publicsector-digital.example", "--as-of", AS_OF
    )
    editions: dict[str, Path] = {}
    test_copy = None
    for path in sorted(outbox.rglob("*.eml"), key=lambda p: p.name):
        variant = path.stem.split("-", 1)[1]
        if path.name.startswith("test-"):
            test_copy = path
        else:
            editions.setdefault(variant, path)
    assert test_copy is not None and len(editions) > 3, sorted(outbox.rglob("*.eml"))
    confirmation = _confirmation(env, outbox)
    return SampleMail(root, env, editions, test_copy, confirmation, _welcome(env, outbox))


def _confirmation(env: dict[str, str], outbox: Path) -> Path:
    """The double opt-in email to the first sample reader, as the subscribe form sends it."""
    from digest.web.optin import send_confirmation

    app = App(**{k.removeprefix("DIGEST_").lower(): v for k, v in env.items()})
    try:
        before = set(outbox.rglob("*.eml"))
        send_confirmation(app, app.config.newsletter("weekly"), 1)
    finally:
        app.close()
    (made,) = set(outbox.rglob("*.eml")) - before
    return made


def _welcome(env: dict[str, str], outbox: Path) -> Path:
    """The welcome email to the first sample reader, as confirming sends it (with the
    sample edition's web link)."""
    from digest.web.welcome import send_welcome

    app = App(**{k.removeprefix("DIGEST_").lower(): v for k, v in env.items()})
    try:
        before = set(outbox.rglob("*.eml"))
        send_welcome(app, app.config.newsletter("weekly"), 1)
    finally:
        app.close()
    (made,) = set(outbox.rglob("*.eml")) - before
    return made
