"""Signing up from the public form, and the double opt-in email.

:func:`subscribe` decides, for one form post, whether a confirmation email goes
out, and never lets the form change an existing person's data: the page shows the
same answer whatever the address (new, pending, active, unsubscribed, bounced,
suppressed), so the form cannot be used to learn who is subscribed.

* a new address joins the list: pending on a double opt-in list (a confirmation
  email goes out), active at once otherwise, with the name and categories given;
* a pending address (never confirmed) is sent the confirmation again;
* someone active elsewhere joins this list (pending until confirmed on a double
  opt-in list); their name and categories are left alone;
* someone who unsubscribed (from this list or everything) changes nothing: the form
  asks for a confirmation email (noted in the consent log), on single and double
  opt-in lists alike, and only their confirmation brings them back;
* active members, bounced or complained addresses and suppressed ones: nothing.

Confirmation emails name their list in every link: the confirm link joins that list,
the unsubscribe link leaves it.

:func:`send_confirmation` renders ``confirm.mjml.j2`` / ``confirm.txt.j2`` (they
extend the shared email layout; override them in ``DIGEST_TEMPLATES``) and sends
the message through the configured delivery backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from digest.app import App
from digest.config import NewsletterConfig
from digest.delivery.envelopes import envelope
from digest.delivery.message import Post, Recipient
from digest.delivery.registry import resolve_backend
from digest.errors import DeliveryError, NotFound
from digest.models import Edition
from digest.personalize import first_name, personal_links
from digest.templating import create_environment, mjml_to_html, render, translate, wrap_text
from subscribers import consent
from subscribers.errors import NotResubscribable, Suppressed
from subscribers.lists import get_list
from subscribers.models import ConsentMethod, ConsentSource, Status, Subscriber
from subscribers.service import add_subscriber, find_subscriber, is_suppressed, membership

log = logging.getLogger(__name__)

HTML_TEMPLATE = "confirm.mjml.j2"
TEXT_TEMPLATE = "confirm.txt.j2"
#: The envelope's period and variant for confirmation emails (they belong to no edition).
CONFIRM = "confirm"


def subscribe(
    session: Session,
    newsletter: NewsletterConfig,
    address: str,
    *,
    name: str = "",
    categories: list[str] | None = None,
    ip: str | None = None,
) -> int | None:
    """Act on a form signup for ``newsletter``'s list (see the module docs); returns the
    subscriber id to send a confirmation email to, or None.  ``address`` must be valid
    (normalise it first); categories must be the newsletter's."""
    by = consent.By(ConsentSource.FORM, ip, f"sign-up form of {newsletter.name}")
    mlist = get_list(session, newsletter.list_name)
    existing = find_subscriber(session, address)
    if existing is None:
        try:
            added = add_subscriber(
                session,
                address,
                mlist.name,
                name=name or None,
                categories=categories or None,
                method=ConsentMethod.FORM,
                ip=ip,
                known_categories=newsletter.category_names,
                by=by,
            )
        except Suppressed:
            return None
        pending = added.membership is not None and added.membership.status is Status.PENDING
        return added.subscriber.id if pending else None
    if existing.status in (Status.BOUNCED, Status.COMPLAINED) or is_suppressed(session, address):
        return None
    member = membership(session, existing.id, mlist.id)
    if existing.status is Status.UNSUBSCRIBED or (
        member is not None and member.status is Status.UNSUBSCRIBED
    ):
        consent.request(session, existing, mlist, by)
        log.info("form signup of unsubscribed subscriber %s: confirmation asked for", existing.id)
        return existing.id
    if member is not None:
        return existing.id if member.status is Status.PENDING else None
    try:
        added = add_subscriber(session, address, mlist.name, method=ConsentMethod.FORM, by=by)
    except (Suppressed, NotResubscribable):
        return None
    pending = added.membership is not None and added.membership.status is Status.PENDING
    return added.subscriber.id if pending else None


@dataclass(frozen=True)
class ConfirmationEmail:
    to: str
    subject: str
    html: str
    text: str
    confirm_url: str


def links(app: App, subscriber_id: int, list_name: str | None = None) -> dict[str, str]:
    """A subscriber's own confirm, unsubscribe and preferences links; the confirm and
    unsubscribe links name ``list_name`` (join it, leave it) when given."""
    return personal_links(
        app.settings, subscriber_id, ("confirm", "unsubscribe", "preferences"), list_name=list_name
    )


def compose_confirmation(
    app: App, newsletter: NewsletterConfig, subscriber_id: int, email: str, name: str
) -> tuple[ConfirmationEmail, dict[str, str]]:
    """The confirmation email for one subscriber (for ``newsletter``'s list), and their
    links."""
    urls = links(app, subscriber_id, newsletter.list_name)
    locale = newsletter.locale
    env = create_environment(app.settings.templates, locale=locale, timezone=newsletter.timezone)
    subject = translate("Please confirm your subscription to %s", locale) % newsletter.title
    context = {
        "newsletter": newsletter,
        "subject": subject,
        "preheader": translate("One click and you are subscribed.", locale),
        "first_name": first_name(name, locale),
        **urls,
    }
    html = mjml_to_html(render(env, HTML_TEMPLATE, context), template=HTML_TEMPLATE)
    text = wrap_text(render(env, TEXT_TEMPLATE, context).strip() + "\n")
    return ConfirmationEmail(email, subject, html, text, urls["confirm_url"]), urls


def send_confirmation(app: App, newsletter: NewsletterConfig, subscriber_id: int) -> str:
    """Send the confirmation email to subscriber ``subscriber_id`` through the configured
    backend; returns where it went (the provider's id or the outbox file)."""
    with app.transaction() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None or not subscriber.email:
            raise NotFound(f"no subscriber with id {subscriber_id}")
        email, name = subscriber.email, subscriber.name or ""
    message, urls = compose_confirmation(app, newsletter, subscriber_id, email, name)
    return send_to_reader(
        app,
        newsletter,
        CONFIRM,
        message,
        urls,
        (subscriber_id, email, name),
        web_url=app.settings.base_url.rstrip("/") + "/",  # no edition to show yet
        what="confirmation email",
    )


class ReaderMessage(Protocol):
    """What a composed message to one reader holds (a confirmation, a welcome)."""

    @property
    def subject(self) -> str: ...
    @property
    def html(self) -> str: ...
    @property
    def text(self) -> str: ...


def send_to_reader(
    app: App,
    newsletter: NewsletterConfig,
    kind: str,
    message: ReaderMessage,
    urls: Mapping[str, str],
    reader: tuple[int, str, str],
    *,
    web_url: str,
    what: str,
) -> str:
    """One message of its own (a confirmation, a welcome: ``kind``) to one reader
    ``(subscriber id, address, name)`` through the configured backend, with the reader's
    links filled in; returns where it went, or raises :class:`DeliveryError` naming
    ``what`` when the backend refuses it."""
    subscriber_id, email, name = reader
    stand_in = Edition(id=0, newsletter=newsletter.name, period=kind)
    env = envelope(newsletter, stand_in, kind, message.subject, message.html, message.text)
    fields = {
        "first_name": first_name(name, newsletter.locale),
        "unsubscribe_url": urls["unsubscribe_url"],
        "preferences_url": urls["preferences_url"],
        "web_url": web_url,
    }
    recipient = Recipient(None, subscriber_id, email, name, fields)
    choice = resolve_backend(app.settings)
    with choice.backend_class.from_settings(app.settings) as sender:
        (result,) = sender.send(Post(env, [recipient]))
    if not result.ok:
        raise DeliveryError(f"the {what} was refused by {choice}: {result.error}")
    return f"{result.provider_id or choice.name}, backend {choice}"


def send_quietly(
    send: Callable[[App, NewsletterConfig, int], str],
    app: App,
    newsletter: NewsletterConfig,
    subscriber_id: int,
    what: str,
) -> None:
    """``send(app, newsletter, subscriber_id)`` after the page has been answered:
    failures are logged, never raised."""
    try:
        where = send(app, newsletter, subscriber_id)
    except Exception:
        log.exception("could not send the %s to subscriber %s", what, subscriber_id)
        return
    log.info("%s for subscriber %s sent (%s)", what, subscriber_id, where)


def send_confirmation_quietly(app: App, newsletter: NewsletterConfig, subscriber_id: int) -> None:
    """:func:`send_confirmation` after the page has been answered: failures are logged."""
    send_quietly(send_confirmation, app, newsletter, subscriber_id, "confirmation email")


__all__ = [
    "ConfirmationEmail",
    "compose_confirmation",
    "links",
    "send_confirmation",
    "send_confirmation_quietly",
    "send_quietly",
    "send_to_reader",
    "subscribe",
]
