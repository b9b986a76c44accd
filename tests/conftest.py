"""Shared fixtures: three actors (alice the owner, bob another user, an admin)
plus anonymous, folders of their own for servers and backups, and the rule
that tests needing PostgreSQL or Redis skip with a reason — or fail when
REQUIRE_SERVICES=1 (CI)."""

import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

FIXTURES = Path(__file__).parent / "fixtures"
WORLD_FIXTURE = FIXTURES / "worlds" / "vanilla-1.14.4" / "world"
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def redis_url() -> str:
    url = os.environ.get("CELERY_BROKER_URL", "")
    return url if url.startswith("redis") else "redis://127.0.0.1:6379/0"


def pytest_runtest_setup(item):
    reasons = []
    if item.get_closest_marker("postgres"):
        url = os.environ.get("DATABASE_URL", "")
        if not url.startswith(("postgres", "postgresql")):
            reasons.append("needs PostgreSQL: set DATABASE_URL=postgres://…")
        else:
            parsed = urlparse(url)
            if not _answers(parsed.hostname or "127.0.0.1", parsed.port or 5432):
                reasons.append(f"PostgreSQL at {parsed.hostname}:{parsed.port or 5432} does not answer")
    if item.get_closest_marker("redis"):
        parsed = urlparse(redis_url())
        if not _answers(parsed.hostname or "127.0.0.1", parsed.port or 6379):
            reasons.append(f"Redis at {parsed.hostname}:{parsed.port or 6379} does not answer")
    if reasons:
        message = "; ".join(reasons)
        if REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but {message}", pytrace=False)
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_roots(settings, tmp_path):
    """Each test gets its own servers root and backup root."""
    settings.MCSITE_SERVERS_ROOT = tmp_path / "servers"
    settings.MCSITE_BACKUP_ROOT = tmp_path / "backups"
    settings.MCSITE_SERVERS_ROOT.mkdir()
    settings.MCSITE_BACKUP_ROOT.mkdir()
    from django.core.cache import cache

    cache.clear()


def _user(username: str, *, superuser: bool = False) -> User:
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", "pw-" + username)
    user = User.objects.create_user(username, f"{username}@example.com", "pw-" + username, is_staff=True)
    user.groups.add(owners_group())
    return user


def owners_group() -> Group:
    """The "Owners" group of the data migration; a transactional test's flush
    empties it, so it is put back as the migration made it."""
    from django.contrib.auth.models import Permission

    group, created = Group.objects.get_or_create(name="Owners")
    if created:
        group.permissions.add(*Permission.objects.filter(content_type__app_label__in=["servers", "backups"]))
    return group


@pytest.fixture
def alice(db):
    return _user("alice")


@pytest.fixture
def bob(db):
    return _user("bob")


@pytest.fixture
def admin_user(db):
    return _user("root", superuser=True)


def issue_token(user) -> str:
    from mcsite.models import ApiToken

    return ApiToken.issue(user)[1]


def _client(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(user)}")
    return client


@pytest.fixture
def anon_api():
    return APIClient()


@pytest.fixture
def alice_api(alice):
    return _client(alice)


@pytest.fixture
def bob_api(bob):
    return _client(bob)


@pytest.fixture
def admin_api(admin_user):
    return _client(admin_user)


@pytest.fixture
def make_server_dir(settings):
    """A server folder inside the servers root, with the real 1.14.4 world."""

    def make(name: str = "survival", *, world: bool = True) -> Path:
        folder = Path(settings.MCSITE_SERVERS_ROOT) / name
        folder.mkdir(parents=True)
        (folder / "server.properties").write_text("level-name=world\nenable-rcon=false\n")
        (folder / "server.jar").write_bytes(b"PK\x03\x04 not a real jar")
        if world:
            shutil.copytree(WORLD_FIXTURE, folder / "world")
        return folder

    return make


@pytest.fixture
def make_server(make_server_dir):
    from servers.models import Server

    def make(owner, name: str = "survival", **fields) -> Server:
        folder = make_server_dir(name, world=fields.pop("world", True))
        return Server.objects.create(owner=owner, name=name, directory=folder.name, **fields)

    return make


@pytest.fixture
def remote_nodes(db, monkeypatch, settings):
    """This process becomes a web tier of its own (MCSITE_NODE="web"), and
    `remote_nodes.add("game-a")` makes a node that reported just now. A call
    sent to an answering node runs at once in this process, as that node's
    worker would run it (the same test folders stand in for its disk); one
    added with `answers=False` has a worker that never picks calls up.
    `remote_nodes.sent` lists every task sent (name, queue, kwargs)."""
    from django.utils import timezone

    from mcsite.celery import app
    from servers import nodes
    from servers.models import Node

    settings.MCSITE_NODE = "web"
    answering: set[str] = set()
    sent: list = []
    real_send = app.send_task

    def send_task(name, args=None, kwargs=None, queue=None, **options):
        sent.append((name, queue, kwargs))
        if name == nodes.CALL_TASK and queue in answering:
            return nodes.node_call_run(**kwargs)
        return real_send(name, args=args, kwargs=kwargs, queue=queue, **options)

    monkeypatch.setattr(app, "send_task", send_task)

    class RemoteNodes:
        def add(self, name: str, *, answers: bool = True, **fields) -> Node:
            if answers:
                answering.add(name)
            node, _ = Node.objects.update_or_create(name=name, defaults={
                "last_heartbeat": timezone.now(), "hostname": f"{name}.example", **fields})
            return node

        sent = None

    helper = RemoteNodes()
    helper.sent = sent
    return helper
