from django.core.management.base import CommandError

from servers.models import Server


def server_arg(value: str) -> Server:
    """A server by id or by name (names must then be unique)."""
    if value.isdigit():
        server = Server.objects.filter(pk=int(value)).first()
    else:
        matches = list(Server.objects.filter(name=value)[:2])
        if len(matches) > 1:
            raise CommandError(f"Several servers are named {value!r}; use the id", returncode=2)
        server = matches[0] if matches else None
    if server is None:
        raise CommandError(f"No server {value!r}", returncode=2)
    return server
