"""Messages shown to users never carry a filesystem path (SPEC §10): paths
under mcsite's folders are cut back to their part inside the folder."""

from pathlib import Path

from django.conf import settings


def _roots() -> list[str]:
    roots = set()
    for name in ("MCSITE_SERVERS_ROOT", "MCSITE_BACKUP_ROOT", "MCSITE_RUN_DIR", "MCSITE_LOG_DIR"):
        folder = Path(getattr(settings, name))
        roots.update({str(folder), str(folder.resolve())})
    return sorted(roots, key=len, reverse=True)  # the longest first: nested roots stay exact


def scrub_paths(text: str) -> str:
    for root in _roots():
        text = text.replace(root + "/", "").replace(root, ".")
    return text
