"""Marked test copies of an edition for editors, outside the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.app import App
from digest.collect import period_for
from digest.compose import Composer
from digest.config import NewsletterConfig
from digest.delivery.envelopes import envelope
from digest.delivery.message import Post, Recipient
from digest.delivery.registry import BackendChoice, resolve_backend
from digest.editions import period_collection
from digest.errors import DeliveryError, NotFound
from digest.models import Edition
from digest.personalize import preview_fields, preview_page_url
from subscribers.errors import InvalidAddress
from subscribers.validate import normalise


@dataclass(frozen=True)
class CopiesSent:
    """Where the test copies went, and through which backend (and why that one)."""

    backend: BackendChoice
    #: False when the backend keeps messages (the outbox) rather than emailing them.
    emailed: bool
    #: (address, where it went: the provider's id, or the outbox file).
    copies: list[tuple[str, str]]

    @property
    def addresses(self) -> list[str]:
        return [address for address, _ in self.copies]

    def summary(self) -> str:
        """One line that says what happened, for the preview page and logs."""
        to = ", ".join(self.addresses) if len(self.copies) <= 3 else f"{len(self.copies)} addresses"
        if self.emailed:
            return f"Test copy sent to {to} through {self.backend}."
        return (
            f"Test copy for {to} written to a file, not emailed: backend {self.backend}. "
            "Set DIGEST_BACKEND=smtp or DIGEST_BACKEND=sendgrid to email test copies."
        )

    def lines(self) -> list[str]:
        """One line per address, for the command line."""
        verb = "sent to" if self.emailed else "written for"
        return [f"Test copy {verb} {address}: {where}" for address, where in self.copies]


def editor_addresses(addresses: list[str]) -> list[str]:
    """The addresses of a test send, normalised; a bad one is a DeliveryError naming it."""
    if not addresses:
        raise DeliveryError("no addresses given; pass --to editor@example.org")
    try:
        return [normalise(a) for a in addresses]
    except InvalidAddress as exc:
        raise DeliveryError(f"--to: {exc}") from None


def send_test(
    app: App,
    newsletter: NewsletterConfig,
    addresses: list[str],
    as_of: datetime,
    *,
    variant: str = "all",
    backend: str | BackendChoice | None = None,
    notice: str | None = None,
    sections: list[str] | None = None,
) -> CopiesSent:
    """Render the period's edition (one variant) and send it to ``addresses`` as a test.

    Nothing is written to the ledger.  The
    copy's links work: "View in your browser" opens the editor's preview of this
    variant (the web version exists only once the edition is sent), and the
    unsubscribe and preferences links lead to a page saying they belong to no one.
    ``notice``: a line for the editors put above the copy (a draft's desk link);
    ``sections``: the variant's sections, given directly (then ``variant`` is not looked up).
    """
    clean = editor_addresses(addresses)
    choice = (
        backend if isinstance(backend, BackendChoice) else resolve_backend(app.settings, backend)
    )
    period = period_for(newsletter, as_of)
    with app.transaction() as s:
        found, collection = period_collection(s, newsletter, period)
        edition = found or Edition(id=0, newsletter=newsletter.name, period=period.key)
        if collection.is_empty:
            raise NotFound(f"{newsletter.name} {period.key} has no articles; nothing to test")
        names = [sec.name for sec in collection.sections]
        composer = Composer(app.settings, newsletter)
        if sections is None:
            sections = _sections_of(variant, names, edition)
        rendered = composer.render(collection, sections)
    html, text = rendered.html, rendered.text
    if notice:
        html, text = _with_notice(html, text, notice)
    env = envelope(newsletter, edition, rendered.key, rendered.subject, html, text, test=True)
    fields = preview_fields(
        app.settings, newsletter=newsletter.name, period=period.key, variant_key=rendered.key
    )
    # The web version exists only once the edition goes out: a test copy's "View in your
    # browser" opens the editor's preview of the same variant instead.
    send_day = period.end.astimezone(newsletter.zone).date()
    fields["web_url"] = preview_page_url(app.settings, newsletter.name, send_day, rendered.key)
    recipients = [Recipient(None, None, address, "", fields) for address in clean]
    cls = choice.backend_class
    with cls.from_settings(app.settings) as sender:
        results = sender.send(Post(env, recipients))
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise DeliveryError(f"test copy refused by {choice.name}: {failed[0]}")
    copies = [(a, r.provider_id or choice.name) for a, r in zip(clean, results, strict=True)]
    return CopiesSent(choice, cls.delivers_mail, copies)


def _with_notice(html: str, text: str, notice: str) -> tuple[str, str]:
    """The bodies with ``notice`` above them (escaped; URLs in it become links)."""
    import re

    from markupsafe import escape

    shown = re.sub(r"(https?://[^\s<]+)", r'<a href="\1">\1</a>', str(escape(notice)))
    banner = (
        '<div style="background:#fff4d6;color:#222;padding:12px 16px;font:15px/1.5 '
        f'Arial,sans-serif;border-bottom:2px solid #c98a00">{shown}</div>'
    )
    opened = re.search(r"<body[^>]*>", html)
    at = opened.end() if opened else 0
    return html[:at] + banner + html[at:], f"{notice}\n\n{'-' * 20}\n\n{text}"


def _sections_of(variant: str, names: list[str], edition: Edition) -> list[str] | None:
    if variant == "all":
        return None
    for v in edition.variants if edition.id else []:
        if v.key == variant:
            return list(v.sections)
    matching = [n for n in names if n.casefold() == variant.casefold()]
    if matching:
        return matching
    raise NotFound(
        f"no variant {variant!r}; use 'all', a section name ({', '.join(names)}) or a "
        "variant key from `digest compose`"
    )
