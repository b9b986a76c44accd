import datetime as dt

import pytest

from backups.services.runs import backup_run, backup_trigger


@pytest.fixture
def take_backup(monkeypatch):
    """Takes a real backup through the services (trigger + run in this
    process), optionally as if at a given UTC time."""

    def take(server, *, at: dt.datetime | None = None, **kwargs):
        if at is not None:
            monkeypatch.setattr("backups.services.runs.timezone.now", lambda: at)
        record = backup_trigger(server=server, actor=server.owner, enqueue=False, **kwargs)
        backup_run(backup_id=record.pk)
        if at is not None:
            monkeypatch.undo()
        record.refresh_from_db()
        assert record.status == "succeeded", (record.error_code, record.error_message)
        return record

    return take


SEED_TIME = dt.datetime(2025, 1, 14, 2, 0, 0, tzinfo=dt.timezone.utc)


from tests.fakes.fixtures import fake_server_factory  # noqa: E402,F401  (fixture)


@pytest.fixture
def fake_mc(fake_server_factory):
    """A Server row backed by a real fake-Minecraft process folder holding the
    1.14.4 world; `started=True` starts it through the service."""
    from servers.models import Server
    from servers.services import server_start

    def make(owner, name: str = "fake", *, started: bool = False, backup_mode: str = "stop", **kwargs) -> Server:
        fake = fake_server_factory(name, copy_real_world=True, **kwargs)
        server = Server(owner=owner, name=name, directory=name, start_command=fake.spec.start_command,
                        rcon_host="127.0.0.1", rcon_port=fake.rcon_port, stop_timeout=3, backup_mode=backup_mode)
        server.rcon_password = fake.rcon_password
        server.save()
        if started:
            server_start(server=server, actor=owner)
            fake.wait_ready()
            server.refresh_from_db()
        server.fake = fake
        return server

    return make
