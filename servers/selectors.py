"""Reads about servers. Status comes from the process itself on the
server's node, else from what that node last reported (servers/nodes.py)."""

from servers import nodes
from servers.models import Server


def server_status(*, server: Server, node_rows: dict | None = None) -> dict:
    """``node_rows``: Node rows by name, when a page shows many servers."""
    return nodes.server_status(server, nodes=node_rows)
