"""Alerts by email and apprise URLs (SPEC §9), one per incident: an incident
opens on the first failure and sends once; repeats while it is open are
silent; it closes when things are well again (e.g. the next good backup)."""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

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


def _notify(*, title: str, body: str, recipients_extra=()) -> bool:
    delivered = False
    subject = f"[mcsite] {title}"
    emails = [e for e in [*settings.MCSITE_ALERT_EMAILS, *recipients_extra] if e]
    if emails:
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, sorted(set(emails)))
            delivered = True
        except Exception as exc:  # noqa: BLE001 — an alert channel failing must not break a backup
            logger.error("alert_email_failed error=%s", exc)
    if settings.MCSITE_ALERT_URLS:
        try:
            import apprise

            notifier = apprise.Apprise()
            for url in settings.MCSITE_ALERT_URLS:
                notifier.add(url)
            if notifier.notify(title=subject, body=body):
                delivered = True
            else:
                logger.error("alert_apprise_failed urls=%d", len(settings.MCSITE_ALERT_URLS))
        except Exception as exc:  # noqa: BLE001
            logger.error("alert_apprise_failed error=%s", exc)
    logger.info("alert_sent title=%s delivered=%s", title, delivered)
    return delivered


def owner_emails(server) -> list[str]:
    email = getattr(server.owner, "email", "") if server is not None else ""
    return [email] if email else []
