"""Who alerts go to, set up in the UI (issue #12): the admins' alert
channels (an email address or an apprise URL each, with a test button) and
each owner's choice of the alert kinds they are emailed about.

A channel's target is sealed and written only: it is never read back out
to a page, the API or a log (the admin shows `target_hint`)."""

from django.db import transaction
from django.utils import timezone

from backups import alerts
from backups.models import AlertChannel, AlertPreference
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode

TEST_TITLE = "Test alert"
TEST_BODY = ("This is a test alert from mcsite. If you can read it, alerts reach this channel "
             "({name}).")


def _invalid(field: str, message: str) -> DomainError:
    return DomainError(ErrorCode.VALIDATION_ERROR, message, details={field: [message]})


# --- channels ---------------------------------------------------------------------------

def alert_channel_save(*, channel: AlertChannel, target: str | None = None, actor=None, request=None,
                       source: str = "admin") -> AlertChannel:
    """Creates or updates a channel. `target` None keeps the stored one (it
    must still suit the channel's kind); a new target is checked (apprise
    can read the URL / a valid email address), sealed, and its last test
    result forgotten (it was about the old target)."""
    if channel.kind not in AlertChannel.Kind.values:
        raise _invalid("kind", "Choose email or apprise.")
    if target is not None and target.strip():
        target = target.strip()
        problem = alerts.channel_target_problem(channel.kind, target)
        if problem:
            raise _invalid("target", problem)
        channel.target = target
        channel.target_hint = alerts.channel_target_hint(channel.kind, target)
        channel.last_test_at, channel.last_test_ok, channel.last_test_error = None, None, ""
        changed_target = True
    else:
        if not channel.target_sealed:
            raise _invalid("target", "Enter the target: an email address or an apprise URL.")
        if alerts.channel_target_problem(channel.kind, channel.target):
            raise _invalid("target", f"The stored target is not a valid {channel.get_kind_display()} target: "
                                     "enter it again for the new kind.")
        changed_target = False
    created = channel.pk is None
    channel.save()
    audit(actor=actor, action="alert_channel.create" if created else "alert_channel.update", obj=channel,
          request=request, source=source,
          detail={"kind": channel.kind, "enabled": channel.enabled, "target_changed": changed_target})
    return channel


def alert_channel_test(*, channel: AlertChannel, actor=None, request=None, source: str = "admin") -> str:
    """Sends a test alert through the same delivery path as real alerts and
    records the outcome on the channel (disabled channels too: testing one
    before turning it on is the point). Returns "" when it was delivered,
    else exactly what failed."""
    error = alerts.deliver_to_channel(channel, f"[mcsite] {TEST_TITLE}", TEST_BODY.format(name=channel.name))
    now = timezone.now()
    AlertChannel.objects.filter(pk=channel.pk).update(last_test_at=now, last_test_ok=not error,
                                                      last_test_error=error[:300])
    channel.last_test_at, channel.last_test_ok, channel.last_test_error = now, not error, error[:300]
    audit(actor=actor, action="alert_channel.test", obj=channel, request=request, source=source,
          outcome="failure" if error else "success", detail={"error": error} if error else {})
    return error


# --- owners' preferences ----------------------------------------------------------------

def alert_preferences(user) -> dict:
    """What `user` is emailed about their own servers: `events` (the kinds
    that are on), one choice per kind with its label, their address, and
    whether they ever saved a choice (no: every kind is on)."""
    row = AlertPreference.objects.filter(user=user).first()
    events = [k for k in alerts.ALERT_KINDS if row is None or k not in row.muted]
    return {
        "events": events,
        "choices": [{"kind": kind, "label": label, "enabled": kind in events}
                    for kind, label in alerts.ALERT_KINDS.items()],
        "email": user.email or None,
        "customized": row is not None,
        "updated_at": row.updated_at if row is not None else None,
    }


def alert_preferences_set(*, user, events, actor=None, request=None, source: str = "api") -> dict:
    """Replaces the kinds `user` is emailed about. Unknown kinds are refused
    and nothing changes."""
    if not isinstance(events, (list, tuple)) or not all(isinstance(e, str) for e in events):
        raise _invalid("events", "A list of event kinds.")
    unknown = [e for e in events if e not in alerts.ALERT_KINDS]
    if unknown:
        raise _invalid("events", f"Unknown event {unknown[0]!r}. Choose from: {', '.join(alerts.ALERT_KINDS)}.")
    chosen = [kind for kind in alerts.ALERT_KINDS if kind in set(events)]
    with transaction.atomic():
        # Stored as what is off: a kind a later version adds is on for everyone until they turn it off.
        muted = [kind for kind in alerts.ALERT_KINDS if kind not in chosen]
        AlertPreference.objects.update_or_create(user=user, defaults={"muted": muted})
        audit(actor=actor or user, action="alert_preferences.update", obj=user, request=request, source=source,
              detail={"events": chosen})
    return alert_preferences(user)
