"""Envelopes: what every message of one variant shares, and each reader's fields.

:func:`envelope` builds one from a newsletter, an edition and a rendered body
(test copies and confirmation emails use it too); :class:`StoredEditions` is
what the send loop asks (see :class:`digest.delivery.loop.EditionContext`): the
envelope of any stored variant, a reader's placeholder values and the list an
edition goes to, each looked up once and cached.
"""

from __future__ import annotations

import threading

from digest.app import App
from digest.config import NewsletterConfig
from digest.delivery import ledger
from digest.delivery.message import Envelope, list_id_header
from digest.errors import NotFound
from digest.models import Edition, Variant
from digest.personalize import fill_shared, recipient_fields, web_url


def list_id(newsletter: NewsletterConfig) -> str:
    """The ``List-Id`` header: ``"Title" <name.sender-domain>`` (RFC 2919; a title
    beyond ASCII as an RFC 2047 encoded word)."""
    domain = newsletter.sender_address.rpartition("@")[2]
    return list_id_header(newsletter.title, newsletter.name, domain)


def envelope(
    newsletter: NewsletterConfig,
    edition: Edition,
    key: str,
    subject: str,
    html: str,
    text: str,
    *,
    test: bool = False,
) -> Envelope:
    return Envelope(
        newsletter=newsletter.name,
        edition_id=edition.id,
        period=edition.period,
        variant_key=key,
        sender=newsletter.sender_address,
        sender_name=newsletter.sender_name,
        reply_to=newsletter.reply_to,
        list_id=list_id(newsletter),
        subject=subject,
        html=html,
        text=text,
        unsubscribe_mailto=newsletter.unsubscribe_mailto,
        test=test,
        message_nonce=edition.message_nonce or "",
    )


class StoredEditions:
    """Resolves any edition's envelope, reader fields and list (cached), for the send loop."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._envelopes: dict[int, Envelope] = {}
        self._editions: dict[int, tuple[Edition, NewsletterConfig]] = {}
        self._lock = threading.Lock()

    def _edition(self, edition_id: int) -> tuple[Edition, NewsletterConfig]:
        cached = self._editions.get(edition_id)  # once per reader: no lock once it is known
        if cached is not None:
            return cached
        with self._lock:
            if edition_id not in self._editions:
                with self.app.sessions() as s:
                    edition = s.get(Edition, edition_id)
                if edition is None:
                    raise NotFound(f"edition {edition_id} does not exist")
                newsletter = self.app.config.newsletter(edition.newsletter)
                self._editions[edition_id] = (edition, newsletter)
            return self._editions[edition_id]

    def list_name(self, edition_id: int) -> str:
        return self._edition(edition_id)[1].list_name

    def envelope(self, variant_id: int) -> Envelope:
        if variant_id not in self._envelopes:
            with self.app.sessions() as s:
                v = s.get(Variant, variant_id)
                if v is None:
                    raise NotFound(f"variant {variant_id} does not exist")
                key, subject, html, text, edition_id = (
                    v.key,
                    v.subject,
                    v.html,
                    v.text,
                    v.edition_id,
                )
            edition, newsletter = self._edition(edition_id)
            # The web version's link is the same for every reader of the variant:
            # filled in once here, not substituted per reader.
            shared = {"web_url": web_url(self.app.settings, newsletter.name, edition.period, key)}
            html = fill_shared(html, shared, html=True)
            text = fill_shared(text, shared, html=False)
            subject = fill_shared(subject, shared, html=False)
            env = envelope(newsletter, edition, key, subject, html, text)
            with self._lock:
                self._envelopes[variant_id] = env
        return self._envelopes[variant_id]

    def fields(self, row: ledger.Row, env: Envelope) -> dict[str, str]:
        newsletter = self._edition(env.edition_id)[1]
        assert row.subscriber_id is not None  # rows of erased readers are skipped before
        return recipient_fields(
            self.app.settings,
            subscriber_id=row.subscriber_id,
            name=row.name,
            newsletter=env.newsletter,
            period=env.period,
            variant_key=env.variant_key,
            locale=newsletter.locale,
            list_name=newsletter.list_name,
        )


__all__ = ["StoredEditions", "envelope", "list_id"]
