"""Template filters of the backup pages: sizes in MiB (one unit everywhere,
1 048 576 bytes = 1.0, as the API's `size_mb`) and verification methods as
backups/verification_display.py reads them."""

from django import template

from backups import verification_display

register = template.Library()

MIB = 2**20
_GROUP = "\u202f"  # narrow no-break space between thousands: 103 936 MiB


def mib_number(size_bytes) -> str:
    """The number of MiB, without the unit: 0.31, 18.3, 2 048."""
    value = float(size_bytes) / MIB
    if value == 0:
        return "0"
    if value < 10:
        return f"{value:.2f}"
    if value < 1000:
        return f"{value:.1f}"
    return f"{value:,.0f}".replace(",", _GROUP)


@register.filter
def download_blocked(record) -> str:
    """Why this web server cannot offer the backup's download (its file is on
    another game host and it has no verified copy), else ""."""
    from django.conf import settings

    from backups import storage
    from backups.services.copy_source import no_download_reason

    if record.snapshot_id and record.repository_id and record.repository.target_id is not None:
        return ""  # a snapshot in a repository on a storage target: exported from there
    if storage.node_of(record) == settings.MCSITE_NODE or record.local_removed_at is not None:
        return ""  # this host's own file (or a copy, or nothing: the link answers that)
    if any(c.status == "verified" for c in record.copies.all()):
        return ""
    return no_download_reason(record)


@register.filter
def state_label(state) -> str:
    """A server's state as words (``node_down``: its game host stopped reporting)."""
    return {"node_down": "Node down"}.get(state, str(state or "unknown").capitalize())


@register.filter
def mib(size_bytes) -> str:
    """Bytes written in MiB: "0.31 MiB", "18.3 MiB", "103 936 MiB"; "—" for none."""
    if size_bytes is None or size_bytes == "":
        return "—"
    try:
        return f"{mib_number(size_bytes)} MiB"
    except (TypeError, ValueError):
        return "—"


@register.filter
def verification_methods(record) -> list[dict]:
    """Every method of the record's verification with its status."""
    return verification_display.methods(getattr(record, "verification", None), max_errors=10)


@register.filter
def failed_checks(record) -> list[dict]:
    """The methods that ran and failed, with their first errors."""
    return verification_display.failed_methods(getattr(record, "verification", None), max_errors=10)


@register.filter
def verification_summary(record) -> str:
    return verification_display.failure_summary(getattr(record, "verification", None))


@register.filter
def starts_in(moment) -> str:
    """A queued backup's not_before in words: "in 42 s", "any moment now"."""
    from django.utils import timezone

    seconds = int((moment - timezone.now()).total_seconds()) if moment else 0
    return f"in {seconds} s" if seconds > 0 else "any moment now"


@register.filter
def retention_words(schedule) -> str:
    """A schedule's retention in words: "Keeps 2 days, and one a day for 30 days"."""
    from backups.services.retention import describe_retention

    return describe_retention(schedule)
