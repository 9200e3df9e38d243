"""The welcome email: sent once a reader confirms a subscription (double opt-in).

:func:`send_welcome` renders ``welcome.mjml.j2`` / ``welcome.txt.j2`` (they extend the
shared email layout; override them in ``DIGEST_TEMPLATES`` like the others) with the
newsletter's latest sent edition's web link when there is one, and sends the message
through the configured delivery backend, as confirmation emails are sent
(:mod:`digest.web.optin`).  It is sent after the confirmation page has been answered; a
failure is logged, never shown to the reader.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.app import App
from digest.config import NewsletterConfig
from digest.errors import NotFound
from digest.models import Edition, EditionStatus, Variant
from digest.personalize import first_name, personal_links, web_url
from digest.templating import create_environment, mjml_to_html, render, translate, wrap_text
from digest.web.optin import send_quietly, send_to_reader
from subscribers.models import Subscriber

log = logging.getLogger(__name__)

HTML_TEMPLATE = "welcome.mjml.j2"
TEXT_TEMPLATE = "welcome.txt.j2"
#: The envelope's period and variant for welcome emails (they belong to no edition).
WELCOME = "welcome"


@dataclass(frozen=True)
class WelcomeEmail:
    to: str
    subject: str
    html: str
    text: str
    latest_url: str | None


def latest_edition_url(app: App, session: Session, newsletter: NewsletterConfig) -> str | None:
    """The web version of the newsletter's latest sent edition (its full variant where
    there is one), or None before the first edition."""
    edition = session.scalars(
        select(Edition)
        .where(Edition.newsletter == newsletter.name, Edition.status == EditionStatus.SENT)
        .order_by(Edition.period_start.desc(), Edition.id.desc())
        .limit(1)
    ).first()
    if edition is None:
        return None
    key = session.scalars(
        select(Variant.key)
        .where(Variant.edition_id == edition.id)
        .order_by(Variant.key != "all", Variant.id)
        .limit(1)
    ).first()
    if key is None:
        return None
    return web_url(app.settings, newsletter.name, edition.period, key)


def compose_welcome(
    app: App,
    newsletter: NewsletterConfig,
    subscriber_id: int,
    email: str,
    name: str,
    latest_url: str | None,
) -> tuple[WelcomeEmail, dict[str, str]]:
    """The welcome email for one reader of ``newsletter``, and their links."""
    urls = personal_links(
        app.settings,
        subscriber_id,
        ("unsubscribe", "preferences"),
        list_name=newsletter.list_name,
    )
    locale = newsletter.locale
    env = create_environment(app.settings.templates, locale=locale, timezone=newsletter.timezone)
    subject = translate("Welcome to %s", locale) % newsletter.title
    context = {
        "newsletter": newsletter,
        "subject": subject,
        "preheader": translate("Your subscription is confirmed.", locale),
        "first_name": first_name(name, locale),
        "latest_url": latest_url,
        **urls,
    }
    html = mjml_to_html(render(env, HTML_TEMPLATE, context), template=HTML_TEMPLATE)
    text = wrap_text(render(env, TEXT_TEMPLATE, context).strip() + "\n")
    return WelcomeEmail(email, subject, html, text, latest_url), urls


def send_welcome(app: App, newsletter: NewsletterConfig, subscriber_id: int) -> str:
    """Send the welcome email to subscriber ``subscriber_id`` through the configured
    backend; returns where it went."""
    with app.transaction() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None or not subscriber.email:
            raise NotFound(f"no subscriber with id {subscriber_id}")
        email, name = subscriber.email, subscriber.name or ""
        latest = latest_edition_url(app, session, newsletter)
    message, urls = compose_welcome(app, newsletter, subscriber_id, email, name, latest)
    return send_to_reader(
        app,
        newsletter,
        WELCOME,
        message,
        urls,
        (subscriber_id, email, name),
        web_url=latest or app.settings.base_url.rstrip("/") + "/",
        what="welcome email",
    )


def send_welcome_quietly(app: App, newsletter: NewsletterConfig, subscriber_id: int) -> None:
    """:func:`send_welcome` after the page has been answered: failures are logged."""
    send_quietly(send_welcome, app, newsletter, subscriber_id, "welcome email")


__all__ = [
    "WelcomeEmail",
    "compose_welcome",
    "latest_edition_url",
    "send_welcome",
    "send_welcome_quietly",
]
