"""``{% key_export_banner %}``: warns superusers, on every page, while backups
are encrypted and the keys were not exported since they last changed
(issue #13: keys survive the host; see backups/services/keys.py)."""

from django import template

from backups.services import keys

register = template.Library()


@register.inclusion_tag("includes/key_export_banner.html", takes_context=True)
def key_export_banner(context, style: str = "site") -> dict:
    user = context.get("user")
    show = bool(user is not None and user.is_active and user.is_superuser and keys.export_needed())
    return {"show": show, "style": style}
