"""Alerts by email and apprise URLs (SPEC §9), one per incident: an incident
opens on the first failure and sends once; repeats while it is open are
silent; it closes when things are well again (e.g. the next good backup).

Every recipient gets a message of their own and every apprise URL is tried
on its own, so one bad address or URL never stops the others; titles are
cleaned of line breaks and control characters (issue #11)."""

import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from backups.events import log_value as _value
from backups.models import AlertIncident

logger = logging.getLogger("mcsite.alerts")


def server_subject(server) -> str:
    return f"server:{server.pk}"


def alert_open(*, kind: str, subject: str, title: str, body: str, recipients_extra=()) -> bool:
    """Opens the incident and notifies once. Returns True when this call sent
    the alert (False while the same incident is already open)."""
    try:
        with transaction.atomic():
            incident = AlertIncident.objects.create(kind=kind, subject=subject, last_message=body[:2000])
    except IntegrityError:
        AlertIncident.objects.filter(kind=kind, subject=subject, resolved_at__isnull=True).update(
            last_message=body[:2000]
        )
        return False
    delivered = _notify(title=title, body=body, recipients_extra=recipients_extra)
    AlertIncident.objects.filter(pk=incident.pk).update(notified=delivered)
    return True


def alert_resolve(*, kind: str, subject: str) -> int:
    return AlertIncident.objects.filter(kind=kind, subject=subject, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )


_LINE_BREAKS = "\r\n\t\v\f\x1c\x1d\x1e\x85\u2028\u2029"
MAX_TITLE = 200


def clean_title(text: str) -> str:
    """A subject line: line breaks (and tabs) become spaces, every other
    control or format character goes, runs of spaces shrink to one — a server
    name can never add a mail header or break an apprise title."""
    text = "".join(" " if ch in _LINE_BREAKS else ch for ch in str(text))
    text = " ".join("".join(ch for ch in text if ch.isprintable()).split())
    return text if len(text) <= MAX_TITLE else text[:MAX_TITLE] + "…"


def _notify(*, title: str, body: str, recipients_extra=()) -> bool:
    """Each email recipient gets a message of their own and each apprise URL
    is notified on its own: one that fails is logged and never stops the
    others. True when at least one of them was delivered."""
    subject = f"[mcsite] {clean_title(title)}"
    emails = sorted({e.strip() for e in [*settings.MCSITE_ALERT_EMAILS, *recipients_extra]
                     if e and e.strip()})
    sent_emails = sum(_send_email(subject, body, address) for address in emails)
    urls = list(settings.MCSITE_ALERT_URLS or [])
    sent_urls = sum(_send_apprise(subject, body, url, position) for position, url in enumerate(urls, 1))
    delivered = bool(sent_emails or sent_urls)
    logger.info("alert_sent title=%s emails=%d/%d urls=%d/%d delivered=%s", _value(title), sent_emails,
                len(emails), sent_urls, len(urls), delivered)
    return delivered


def _send_email(subject: str, body: str, address: str) -> bool:
    try:
        validate_email(address)
        sent = EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [address]).send()
    except Exception as exc:  # noqa: BLE001 — a bad address or a failing server must not stop the others
        logger.error("alert_email_failed to=%s error=%s", _value(address),
                     _value(f"{type(exc).__name__}: {exc}"))
        return False
    return bool(sent)


def _send_apprise(subject: str, body: str, url: str, position: int) -> bool:
    """One URL, one Apprise object. The URL is logged by position only: it
    often holds a token or a password."""
    try:
        import apprise

        notifier = apprise.Apprise()
        if not notifier.add(url):
            logger.error("alert_apprise_failed url=%d error=%s", position,
                         _value("apprise cannot read this URL"))
            return False
        if notifier.notify(title=subject, body=body):
            return True
        logger.error("alert_apprise_failed url=%d error=%s", position,
                     _value("the service did not accept it"))
    except Exception as exc:  # noqa: BLE001
        logger.error("alert_apprise_failed url=%d error=%s", position, _value(type(exc).__name__))
    return False


def owner_emails(server) -> list[str]:
    email = getattr(server.owner, "email", "") if server is not None else ""
    return [email] if email else []
