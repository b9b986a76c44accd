"""Alerts by email and apprise URLs (SPEC §9), one per incident: an incident
opens on the first failure and sends once; repeats while it is open are
silent; it closes when things are well again (e.g. the next good backup).

Who is told (issue #12):
* site-wide: the environment's MCSITE_ALERT_EMAILS / MCSITE_ALERT_URLS and
  every enabled AlertChannel (email addresses and apprise URLs admins add in
  the admin), about every alert;
* the server's owner, by email, about the kinds their AlertPreference lists
  (no preference row: every kind). `owner_emails(server)` hands alert_open
  the owner along with the address, so call sites stay one line.

Every recipient gets a message of their own and every apprise URL is tried
on its own, so one bad address or URL never stops the others; titles are
cleaned of line breaks and control characters (issue #11). Apprise URLs
hold tokens: they are logged by position (environment) or by channel name,
and what apprise said about a failure is logged with every part of the URL
hidden (`redact`)."""

import logging
import re
from contextlib import contextmanager

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from backups.events import log_value as _value
from backups.models import AlertChannel, AlertIncident, AlertPreference

logger = logging.getLogger("mcsite.alerts")

# Every alert kind about one server, with what it means to its owner: the
# checkboxes of the owner's "Alerts" page and the API's preferences. Adding
# an `alert_open(kind=…)` means adding its label here or in SITE_ALERT_KINDS
# (tests/backups/test_alert_channels.py greps for them).
ALERT_KINDS = {
    "backup_failed": "A backup failed, or a scheduled backup could not start",
    "verification_failed": "A new backup failed its verification",
    "corruption": "A backup file is corrupt (its checksum or read-back failed)",
    "backup_recheck_failed": "A stored backup that passed before fails its periodic re-check (bit rot)",
    "dead_man": "No successful backup of a scheduled server for twice its period",
    "server_down": "A server stopped for a backup or restore could not be started again",
    "saves_paused": "World saving could not be turned back on after a live backup",
    "restore_failed": "A restore failed",
}
# Alerts about the whole site: site-wide recipients only, never an owner.
SITE_ALERT_KINDS = {
    "disk_usage_<percent>": "The backup disk is over a threshold of the backup settings (80 %, 90 %)",
    "weak_encryption_password": "Backups are encrypted with a password set before the strength rule",
    "offsite_copy_failed": "A backup could not be copied to an off-site target, or a copy there no longer matches",
    "node_down": "A game host (node) has not reported for 3 heartbeats",
}


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
    delivered = _notify(title=title, body=body, recipients_extra=_wanted(kind, recipients_extra))
    AlertIncident.objects.filter(pk=incident.pk).update(notified=delivered)
    return True


def alert_resolve(*, kind: str, subject: str) -> int:
    return AlertIncident.objects.filter(kind=kind, subject=subject, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )


# --- owners and their preferences ----------------------------------------------------

class OwnerEmails(list):
    """The owner's address (a list of at most one) that remembers whose it
    is, so that alert_open can ask their AlertPreference about the kind."""

    def __init__(self, addresses, user_id):
        super().__init__(addresses)
        self.user_id = user_id


def owner_emails(server) -> list[str]:
    owner = getattr(server, "owner", None) if server is not None else None
    email = getattr(owner, "email", "") if owner is not None else ""
    return OwnerEmails([email] if email else [], getattr(owner, "pk", None))


def owner_wants(user_id, kind: str) -> bool:
    """Whether this user is told about `kind` on their servers: yes without
    a preference row, and for a kind they could not choose (not in
    ALERT_KINDS), else only the kinds they ticked."""
    if user_id is None or kind not in ALERT_KINDS:
        return True
    muted = AlertPreference.objects.filter(user_id=user_id).values_list("muted", flat=True).first()
    return muted is None or kind not in muted


def _wanted(kind: str, recipients_extra):
    if isinstance(recipients_extra, OwnerEmails) and not owner_wants(recipients_extra.user_id, kind):
        logger.info("alert_owner_opted_out kind=%s user_id=%s", _value(kind), recipients_extra.user_id)
        return ()
    return recipients_extra


# --- delivery ---------------------------------------------------------------------------

_LINE_BREAKS = "\r\n\t\v\f\x1c\x1d\x1e\x85\u2028\u2029"
MAX_TITLE = 200
MAX_ERROR = 300


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
    unique = {}  # one message per address, however many places name it (case-insensitive)
    for e in [*settings.MCSITE_ALERT_EMAILS, *recipients_extra]:
        if e and e.strip():
            unique.setdefault(e.strip().lower(), e.strip())
    emails = sorted(unique.values())
    sent_emails = 0
    for address in emails:
        error = send_email(subject, body, address)
        if error:
            logger.error("alert_email_failed to=%s error=%s", _value(address), _value(error))
        sent_emails += not error
    urls = list(settings.MCSITE_ALERT_URLS or [])
    sent_urls = 0
    for position, url in enumerate(urls, 1):
        error = send_apprise(subject, body, url)
        if error:
            logger.error("alert_apprise_failed url=%d error=%s", position, _value(error))
        sent_urls += not error
    channels = [c for c in AlertChannel.objects.filter(enabled=True)
                if not (c.kind == AlertChannel.Kind.EMAIL and _channel_address(c) in unique)]
    sent_channels = sum(not deliver_to_channel(channel, subject, body) for channel in channels)
    delivered = bool(sent_emails or sent_urls or sent_channels)
    logger.info("alert_sent title=%s emails=%d/%d urls=%d/%d channels=%d/%d delivered=%s", _value(title),
                sent_emails, len(emails), sent_urls, len(urls), sent_channels, len(channels), delivered)
    return delivered


def _channel_address(channel: AlertChannel) -> str:
    try:
        return channel.target.strip().lower()
    except Exception:  # noqa: BLE001 — unreadable: deliver_to_channel says why
        return ""


def deliver_to_channel(channel: AlertChannel, subject: str, body: str) -> str:
    """Sends one message to one channel; "" when it was delivered, else what
    failed (never the target's secret parts). Failures are logged by the
    channel's name."""
    try:
        target = channel.target
    except Exception as exc:  # noqa: BLE001 — a target sealed with another SECRET_KEY
        error = f"the stored target cannot be read ({type(exc).__name__}); enter it again"
    else:
        if channel.kind == AlertChannel.Kind.EMAIL:
            error = send_email(subject, body, target)
        else:
            error = send_apprise(subject, body, target)
    if error:
        logger.error("alert_channel_failed channel=%s kind=%s error=%s", _value(channel.name), channel.kind,
                     _value(error))
    return error


def send_email(subject: str, body: str, address: str) -> str:
    """One message to one address: "" when the mail backend took it, else why not."""
    try:
        validate_email(address)
        sent = EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [address]).send()
    except Exception as exc:  # noqa: BLE001 — a bad address or a failing server must not stop the others
        return _limit(f"{type(exc).__name__}: {exc}")
    return "" if sent else "the mail server did not accept the message"


def send_apprise(subject: str, body: str, url: str) -> str:
    """One URL, one Apprise object: "" when the service accepted it, else
    what apprise said (its warnings and errors) with every part of the URL
    hidden."""
    try:
        import apprise

        notifier = apprise.Apprise()
        with _quiet_apprise():
            readable = _single_url(url) and notifier.add(url)
        if not readable:
            return "apprise cannot read this URL"
        with _redacting(url), apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as said:
            ok = notifier.notify(title=subject, body=body)
        if ok:
            return ""
        detail = " ".join(line.strip() for line in said.getvalue().splitlines() if line.strip())
        return _limit("the service did not accept it" + (f": {redact(detail, url)}" if detail else ""))
    except Exception as exc:  # noqa: BLE001
        return _limit(f"apprise failed: {type(exc).__name__}")


class _DropAll(logging.Filter):
    def filter(self, record):
        return False


@contextmanager
def _quiet_apprise():
    """Apprise logs a URL it cannot read whole ("Unsupported URL: …"): not a
    word of it while one is parsed."""
    apprise_logger, drop = logging.getLogger("apprise"), _DropAll()
    apprise_logger.addFilter(drop)
    try:
        yield
    finally:
        apprise_logger.removeFilter(drop)


class _Redact(logging.Filter):
    def __init__(self, url: str):
        super().__init__()
        self.url = url

    def filter(self, record):
        message = record.getMessage()
        cleaned = redact(message, self.url)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


# The loggers that may write a part of the URL while it is used (apprise's
# and urllib3's DEBUG lines name the request's path).
_NOTIFY_LOGGERS = ("apprise", "urllib3.connectionpool", "urllib3.connection", "requests")


@contextmanager
def _redacting(url: str):
    """Every line those loggers write while `url` is notified has its parts hidden."""
    loggers, redacting = [logging.getLogger(name) for name in _NOTIFY_LOGGERS], _Redact(url)
    for each in loggers:
        each.addFilter(redacting)
    try:
        yield
    finally:
        for each in loggers:
            each.removeFilter(redacting)


def _single_url(url: str) -> bool:
    """Apprise reads "a b" or "a,b" as several URLs: a target is one."""
    return bool(url) and "://" in url and not re.search(r"[\s,]", url)


_URL_PARTS = re.compile(r"[/@:?&=#;]+")


def redact(text: str, url: str) -> str:
    """`text` with every part of `url` (host, user, password, path segments,
    query values: any of them can be a token) of 4 characters or more
    replaced by "…"."""
    rest = url.split("://", 1)[-1]
    parts = sorted({p for p in _URL_PARTS.split(rest) if len(p) >= 4} | {rest, url}, key=len, reverse=True)
    for part in parts:
        if part:
            text = text.replace(part, "…")
    return text


def _limit(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR - 1] + "…"


# --- channels' targets --------------------------------------------------------------

def channel_target_problem(kind: str, target: str) -> str:
    """Why `target` cannot be a channel of `kind` ("" when it can)."""
    target = (target or "").strip()
    if not target:
        return "Enter the target."
    if kind == AlertChannel.Kind.EMAIL:
        try:
            validate_email(target)
        except Exception:  # noqa: BLE001
            return "Enter a valid email address."
        return ""
    if kind == AlertChannel.Kind.APPRISE:
        import apprise

        if not _single_url(target):
            return "Enter one apprise URL, e.g. discord://webhook_id/webhook_token."
        with _quiet_apprise():
            readable = apprise.Apprise().add(target)
        if not readable:
            scheme = target.split("://", 1)[0]
            return f"Apprise cannot read this URL (is “{scheme[:20]}://” a service apprise knows, with all its parts?)."
        return ""
    return "Choose email or apprise."


def channel_target_hint(kind: str, target: str) -> str:
    """What is shown of a target: the address, or only an apprise URL's scheme."""
    target = (target or "").strip()
    if kind == AlertChannel.Kind.EMAIL:
        return target[:100]
    return f"{target.split('://', 1)[0][:90]}://…"
