"""Envelopes: what every message of one variant shares, and each reader's fields.

:func:`envelope` builds one from a newsletter, an edition and a rendered body
(test copies and confirmation emails use it too); :class:`StoredEditions` is
what the send loop asks (see :class:`digest.delivery.loop.EditionContext`): the
envelope of any stored variant, a reader's placeholder values and the list an
edition goes to, each looked up once and cached.

For a newsletter with ``track_clicks`` or ``track_opens``, a variant has two envelopes:
the tracked one (article links through ``/r/…``, the ``/o/…`` pixel; see
:mod:`digest.tracking`), made once per variant, and the variant as rendered, for
readers who opted out of tracking.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest import tracking
from digest.app import App
from digest.compose import article_links
from digest.config import NewsletterConfig
from digest.delivery import ledger
from digest.delivery.message import Envelope, list_id_header
from digest.editions import edition_collection
from digest.errors import NotFound
from digest.models import Edition, Variant
from digest.personalize import fill_shared, recipient_fields, web_url
from subscribers.models import Subscriber


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
        self._envelopes: dict[tuple[int, bool], Envelope] = {}
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

    def tracks(self, edition_id: int) -> bool:
        """Whether the edition's newsletter tracks clicks or opens."""
        newsletter = self._edition(edition_id)[1]
        return newsletter.track_clicks or newsletter.track_opens

    def untracked(
        self, session: Session, edition_id: int, subscriber_ids: Sequence[int]
    ) -> set[int]:
        """Those of ``subscriber_ids`` who get the untracked envelope (they opted out);
        none to look up when the newsletter tracks nothing."""
        if not subscriber_ids or not self.tracks(edition_id):
            return set()
        return set(
            session.scalars(
                select(Subscriber.id).where(
                    Subscriber.id.in_(list(subscriber_ids)), Subscriber.no_tracking.is_(True)
                )
            )
        )

    def envelope(self, variant_id: int, tracked: bool = True) -> Envelope:
        key = (variant_id, tracked)
        if key not in self._envelopes:
            with self.app.sessions() as s:
                v = s.get(Variant, variant_id)
                if v is None:
                    raise NotFound(f"variant {variant_id} does not exist")
                v_key, subject, html, text, edition_id = (
                    v.key,
                    v.subject,
                    v.html,
                    v.text,
                    v.edition_id,
                )
            edition, newsletter = self._edition(edition_id)
            # The web version's link is the same for every reader of the variant:
            # filled in once here, not substituted per reader.
            shared = {"web_url": web_url(self.app.settings, newsletter.name, edition.period, v_key)}
            html = fill_shared(html, shared, html=True)
            text = fill_shared(text, shared, html=False)
            subject = fill_shared(subject, shared, html=False)
            if tracked:
                html, text = self._track(edition, newsletter, html, text)
            env = envelope(newsletter, edition, v_key, subject, html, text)
            with self._lock:
                self._envelopes[key] = env
        return self._envelopes[key]

    def _track(
        self, edition: Edition, newsletter: NewsletterConfig, html: str, text: str
    ) -> tuple[str, str]:
        """The bodies with tracked article links and the pixel, as the newsletter asks."""
        settings = self.app.settings
        base = settings.base_url
        if newsletter.track_clicks:
            with self.app.transaction() as s:
                current = s.get(Edition, edition.id)
                assert current is not None
                links = article_links(newsletter, edition_collection(s, newsletter, current))
                ids = tracking.links_for(s, edition.id, links)
            secret = settings.secret_key.get_secret_value()
            tokens = {url: tracking.link_token(secret, i) for url, i in ids.items()}
            html_urls = {u: tracking.click_url(base, t, html=True) for u, t in tokens.items()}
            text_urls = {u: tracking.click_url(base, t, html=False) for u, t in tokens.items()}
            html = tracking.track_html(html, html_urls)
            text = tracking.track_text(text, text_urls)
        if newsletter.track_opens:
            html = tracking.track_html(html, {}, tracking.pixel_tag(base))
        return html, text

    def fields(self, row: ledger.Row, env: Envelope) -> dict[str, str]:
        newsletter = self._edition(env.edition_id)[1]
        assert row.subscriber_id is not None  # rows of erased readers are skipped before
        fields = recipient_fields(
            self.app.settings,
            subscriber_id=row.subscriber_id,
            name=row.name,
            newsletter=env.newsletter,
            period=env.period,
            variant_key=env.variant_key,
            locale=newsletter.locale,
            list_name=newsletter.list_name,
            edition_id=env.edition_id if not env.test else None,
        )
        if tracking.FIELD in env.used_fields:
            secret = self.app.settings.secret_key.get_secret_value()
            fields[tracking.FIELD] = tracking.reader_token(
                secret, env.edition_id, row.subscriber_id
            )
        return fields


__all__ = ["StoredEditions", "envelope", "list_id"]
