"""The one way every command names a server: its name in any case, its
folder (relative to the servers root, or absolute inside it) or its id."""

import difflib
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from servers.models import Server

SUGGESTIONS = 5


def server_arg(value: str) -> Server:
    """The server `value` names, or CommandError (exit code 2): several
    servers match (listed with ids and owners), or none (close names and
    folders suggested)."""
    value = (value or "").strip()
    matches = _matches(value)
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = "\n".join(f"  id {s.pk}: {s.name!r}, folder {s.directory}, owner {s.owner.get_username()}"
                           for s in matches)
        raise CommandError(f"Several servers match {value!r}; give the id:\n{listed}", returncode=2)
    raise CommandError(f"No server {value!r}{_suggestions(value)}", returncode=2)


def server_here(value: str) -> Server:
    """As server_arg, for a command that works on the server's folder in
    this process: the server must live on this process's node (issue #15)."""
    server = server_arg(value)
    if server.node != settings.MCSITE_NODE:
        raise CommandError(f"{server.name} lives on game host {server.node}: run this command there "
                           f"(with MCSITE_NODE={server.node}), or use the web pages or the API from anywhere",
                           returncode=2)
    return server


def _matches(value: str) -> list[Server]:
    if not value:
        return []
    query = Server.objects.select_related("owner")
    found = {s.pk: s for s in query.filter(name__iexact=value)}
    folder = _folder(value)
    if folder:
        found.update({s.pk: s for s in query.filter(directory=folder)})
    if value.isdigit():
        found.update({s.pk: s for s in query.filter(pk=int(value))})
    return sorted(found.values(), key=lambda s: s.pk)


def _folder(value: str) -> str | None:
    """`value` as a folder relative to the servers root (as Server.directory
    stores it: symlinks resolved), or None if it is not inside the root."""
    root = Path(settings.MCSITE_SERVERS_ROOT).resolve()
    try:
        path = Path(value)
        resolved = (path if path.is_absolute() else root / path).resolve()
        relative = resolved.relative_to(root)
    except (OSError, RuntimeError, ValueError):
        return None
    return str(relative) if relative.parts else None


def _suggestions(value: str) -> str:
    servers = list(Server.objects.select_related("owner").order_by("pk"))
    by_word: dict[str, list[Server]] = {}
    for server in servers:
        for word in {server.name.lower(), server.directory.lower()}:
            by_word.setdefault(word, []).append(server)
    close = difflib.get_close_matches(value.lower(), list(by_word), n=SUGGESTIONS, cutoff=0.6)
    suggested = {s.pk: s for word in close for s in by_word[word]}
    if not suggested:
        return " (give its name, its folder or its id)" if servers else " (there are no servers yet)"
    listed = "\n".join(f"  {s.name}  (id {s.pk}, folder {s.directory}, owner {s.owner.get_username()})"
                       for s in list(suggested.values())[:SUGGESTIONS])
    return f". Did you mean:\n{listed}"
