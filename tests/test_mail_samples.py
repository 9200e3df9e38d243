"""The sample's mail as it goes out (every variant of the edition, a test copy, the
confirmation email): standards first, then Debian's SpamAssassin, local tests only,
where every message scores at most 0.5 and none trips a rule about how it is made.

One `spamassassin` run scores every message (read as an mbox): starting it costs
seconds, scoring one message a fraction of that.  Bayes and the network tests are off,
so the score depends only on the message.  Skipped, saying so, without spamassassin.
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.sample import SampleMail, sample_mail

SPAMASSASSIN = shutil.which("spamassassin")
MAX_SCORE = 0.5
#: Rules that say a message is badly made (each fired on digest's mail once).
CRAFT_RULES = {
    "MIME_QP_LONG_LINE",  # quoted-printable lines over 76 characters
    "HTML_FONT_LOW_CONTRAST",  # text coloured like its background (the old preheader)
    "LONG_INVISIBLE_TEXT",
    "LONGLN_LOW_CONTRAST",
    "MIME_HTML_ONLY",
    "MISSING_MID",
    "MISSING_DATE",
    "HTML_IMAGE_ONLY_32",
}

needs_spamassassin = pytest.mark.skipif(
    SPAMASSASSIN is None, reason="spamassassin not found: apt-get install spamassassin"
)


@dataclass(frozen=True)
class Score:
    points: float
    rules: dict[str, float]

    def __str__(self) -> str:
        fired = ", ".join(f"{name} {pts:+.1f}" for name, pts in self.rules.items())
        return f"{self.points:.1f} points ({fired})"


_REPORT = re.compile(
    r"Content analysis details:\s+\((-?[\d.]+) points.*?\n-{4} [-\s]+\n(.*?)\n\n", re.S
)
_RULE = re.compile(r"^\s*(-?[\d.]+)\s+([A-Z0-9_]+)\s", re.M)


_MESSAGE_ID = re.compile(r"^Message-ID:\s*(<[^>]+>)", re.M | re.I)


def spam_scores(messages: list[Path], workdir: Path) -> list[Score]:
    """SpamAssassin's verdict on each message (one run for all of them), matched back by
    Message-ID: the mbox is not necessarily scored in order."""
    mbox = workdir / "messages.mbox"
    ids = []
    with mbox.open("wb") as out:
        for path in messages:
            raw = path.read_bytes().replace(b"\r\n", b"\n")
            found = _MESSAGE_ID.search(raw.partition(b"\n\n")[0].decode("ascii"))
            assert found, f"{path} has no Message-ID"
            ids.append(found.group(1))
            raw = re.sub(rb"(?m)^(>*From )", rb">\1", raw)
            out.write(b"From digest@localhost Mon Nov 23 08:00:00 2026\n" + raw + b"\n")
    assert len(set(ids)) == len(ids), ids
    prefs = workdir / "user_prefs"
    prefs.write_text("")
    assert SPAMASSASSIN is not None
    with mbox.open("rb") as stdin:
        result = subprocess.run(
            [
                SPAMASSASSIN,
                "--local",
                "--test-mode",
                "--mbox",
                "--nocreate-prefs",
                f"--prefspath={prefs}",
                "--cf=use_bayes 0",
                "--cf=bayes_auto_learn 0",
            ],
            stdin=stdin,
            capture_output=True,
            timeout=300,
            check=False,
        )
    output = result.stdout.decode("utf-8", "replace")
    scores: dict[str, Score] = {}
    for chunk in re.split(r"(?m)^From digest@localhost ", output):
        found, report = _MESSAGE_ID.search(chunk), _REPORT.search(chunk)
        if found and report:
            points, table = report.groups()
            rules = {name: float(pts) for pts, name in _RULE.findall(table)}
            scores[found.group(1)] = Score(float(points), rules)
    assert result.returncode == 0 and set(scores) == set(ids), (
        f"spamassassin exited {result.returncode} and scored {len(scores)} of "
        f"{len(ids)} messages: {result.stderr.decode(errors='replace')[-2000:]}"
    )
    return [scores[i] for i in ids]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleMail:
    return sample_mail(tmp_path_factory.mktemp("sample-mail"))


def test_every_sample_message_follows_the_mime_and_header_rules(sample: SampleMail) -> None:
    """RFC 2045 line lengths, one MIME-Version, RFC 2919/2047 List-Id, the "-- " footer."""
    for name, path in sample.all().items():
        raw = path.read_bytes()
        body = raw.partition(b"\r\n\r\n")[2]
        assert max(len(line) for line in body.split(b"\r\n")) <= 76, name
        assert raw.count(b"\nMIME-Version:") + raw.startswith(b"MIME-Version:") == 1, name
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert msg["List-Id"] == (
            "Public Sector Digital — The Week <weekly.publicsector-digital.example>"
        ), name
        assert re.fullmatch(r"<[^<>@\s]+@publicsector-digital\.example>", msg["Message-ID"]), name
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "\n-- \n" in text.replace("\r\n", "\n"), name


def _badly_made(path: Path) -> Path:
    """A control message with what digest's mail had before: quoted-printable lines of
    900 characters and text coloured (almost) like its background."""
    line = "=3D" * 300
    path.write_bytes(
        (
            "From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n"
            "Date: Mon, 23 Nov 2026 08:00:00 +0000\r\nMessage-ID: <x@example.org>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            '<body style=3D"background-color:#f2f0eb"><div style=3D"color:#f2f0ec">'
            f"{'hidden words ' * 40}</div>{line}</body>\r\n"
        ).encode()
    )
    return path


@needs_spamassassin
def test_every_sample_message_scores_at_most_half_a_point(
    sample: SampleMail, tmp_path: Path
) -> None:
    """Each variant of the sample edition, a test copy and the confirmation email; a
    badly made control message in the same run shows the scorer sees those rules."""
    named = sample.all()
    assert len(named) >= 6
    control = _badly_made(tmp_path / "control.eml")
    *found, control_score = spam_scores([*named.values(), control], tmp_path)
    assert {"MIME_QP_LONG_LINE", "HTML_FONT_LOW_CONTRAST"} <= control_score.rules.keys()
    scores = dict(zip(named, found, strict=True))
    for name, score in scores.items():
        print(f"{name}: {score}")
    too_high = {name: str(s) for name, s in scores.items() if s.points > MAX_SCORE}
    assert not too_high, f"SpamAssassin scores above {MAX_SCORE}: {too_high}"
    crafted = {name: sorted(CRAFT_RULES & s.rules.keys()) for name, s in scores.items()}
    assert not any(crafted.values()), f"rules about how the mail is made fired: {crafted}"
