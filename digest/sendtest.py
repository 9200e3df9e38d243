"""Marked test copies of an edition for editors, outside the ledger."""

from __future__ import annotations

from datetime import datetime

from digest.app import App
from digest.collect import period_for
from digest.compose import Composer
from digest.config import NewsletterConfig
from digest.delivery.factory import make_backend
from digest.delivery.message import Post, Recipient
from digest.errors import DeliveryError, NotFound
from digest.models import Edition
from digest.personalize import preview_fields, preview_page_url
from digest.send import envelope, period_collection
from subscribers.errors import InvalidAddress
from subscribers.validate import normalise


def send_test(
    app: App,
    newsletter: NewsletterConfig,
    addresses: list[str],
    as_of: datetime,
    *,
    variant: str = "all",
    backend: str | None = None,
) -> list[tuple[str, str]]:
    """Render the period's edition (one variant) and send it to ``addresses`` as a test.

    Returns (address, where it went) pairs.  Nothing is written to the ledger.  The
    copy's links work: "View in your browser" opens the editor's preview of this
    variant (the web version exists only once the edition is sent), and the
    unsubscribe and preferences links lead to a page saying they belong to no one.
    """
    if not addresses:
        raise DeliveryError("no addresses given; pass --to editor@example.org")
    try:
        clean = [normalise(a) for a in addresses]
    except InvalidAddress as exc:
        raise DeliveryError(f"--to: {exc}") from None
    period = period_for(newsletter, as_of)
    with app.session() as s:
        found, collection = period_collection(s, newsletter, period)
        edition = found or Edition(id=0, newsletter=newsletter.name, period=period.key)
        if collection.is_empty:
            raise NotFound(f"{newsletter.name} {period.key} has no articles; nothing to test")
        names = [sec.name for sec in collection.sections]
        composer = Composer(app.settings, newsletter)
        sections = _sections_of(variant, names, edition)
        rendered = composer.render(collection, sections)
    env = envelope(
        newsletter, edition, rendered.key, rendered.subject, rendered.html, rendered.text, test=True
    )
    fields = preview_fields(
        app.settings, newsletter=newsletter.name, period=period.key, variant_key=rendered.key
    )
    # The web version exists only once the edition goes out: a test copy's "View in your
    # browser" opens the editor's preview of the same variant instead.
    send_day = period.end.astimezone(newsletter.zone).date()
    fields["web_url"] = preview_page_url(app.settings, newsletter.name, send_day, rendered.key)
    recipients = [Recipient(None, None, address, "", fields) for address in clean]
    name = backend or app.settings.backend
    with make_backend(name, app.settings) as sender:
        results = sender.send(Post(env, recipients))
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise DeliveryError(f"test copy refused by {name}: {failed[0]}")
    return [(a, r.provider_id or name) for a, r in zip(clean, results, strict=True)]


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
