"""Writes the audit trail (SPEC §2): every state change, who, what, which
object, from where, and how it ended."""

import logging

from mcsite.client_ip import client_ip  # the site's one rule for the client's address
from mcsite.models import AuditEvent

logger = logging.getLogger("mcsite.audit")


def audit(
    *,
    actor,
    action: str,
    obj=None,
    request=None,
    source: str = "api",
    outcome: str = AuditEvent.Outcome.SUCCESS,
    detail: dict | None = None,
) -> AuditEvent:
    user = actor if getattr(actor, "is_authenticated", False) else None
    event = AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user else "",
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        ip_address=client_ip(request),
        source=source,
        outcome=outcome,
        detail=detail or {},
    )
    logger.info(
        "audit action=%s actor=%s object=%s:%s outcome=%s",
        action, event.actor_name or "system", event.object_type, event.object_id, outcome,
    )
    return event
