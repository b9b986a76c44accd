"""Issue #12: old backups are re-checked. A daily sweep sends a
re-verification of the stored backups checked longest ago (at most
`recheck_batch`, only those older than `recheck_days`) to the queue of each
backup's node, through the real Celery broker of the tests (memory://); the
run reads the real file again. One byte flipped on disk is caught and alerted
once."""

import datetime as dt
import logging

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

import backups.tasks  # noqa: F401  (registers the tasks the messages name)
from backups import storage
from backups.models import AlertIncident, BackupRecord, BackupSettings
from backups.services import config
from backups.services.recheck import recheck_sweep
from mcsite.celery import app
from servers.models import Node

pytestmark = pytest.mark.django_db


def drain(queue: str) -> list[tuple[str, dict]]:
    """Every task message waiting in a queue of the broker: (task name, kwargs)."""
    messages = []
    with app.connection_for_read() as connection:
        simple = connection.SimpleQueue(queue, no_ack=True)
        try:
            while True:
                try:
                    message = simple.get(timeout=0.2)
                except simple.Empty:
                    break
                args, kwargs, _ = message.decode()
                messages.append((message.headers["task"], kwargs))
        finally:
            simple.close()
    return messages


def work(messages) -> None:
    """What the node's worker does with them: run each task."""
    for name, kwargs in messages:
        app.tasks[name](**kwargs)


@pytest.fixture
def node(request, db):
    """A queue name of this test's own (the memory broker is per process)."""
    name = f"recheck-{request.node.name[:40]}"
    drain(name)
    Node.objects.create(name=name, last_heartbeat=timezone.now())  # reporting: triggers are accepted for it
    return name


def _age(record, *, days: float, field: str = "verified_at") -> None:
    BackupRecord.objects.filter(pk=record.pk).update(**{field: timezone.now() - dt.timedelta(days=days)})


def _flip_one_byte(record) -> None:
    path = storage.absolute_path(record.storage_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_on_disk_is_caught_by_the_sweep_and_alerted_once(alice, make_server, take_backup, node,
                                                                        settings, caplog):
    settings.MCSITE_ALERT_EMAILS, settings.MCSITE_ALERT_URLS = ["ops@example.com"], []
    server = make_server(alice, node=node)
    record = take_backup(server)
    assert record.verification_passed is True and record.rechecked_at is None
    _age(record, days=8)
    _flip_one_byte(record)
    mail.outbox.clear()

    with caplog.at_level(logging.INFO, logger="mcsite.events"):
        assert recheck_sweep() == [record.pk]
        messages = drain(node)
        assert messages == [("backups.tasks.recheck_backup", {"backup_id": record.pk})]
        work(messages)
    record.refresh_from_db()
    assert record.verification_passed is False
    assert record.rechecked_at is not None and timezone.now() - record.rechecked_at < dt.timedelta(minutes=1)
    assert record.verification["methods"]["checksum"]["ok"] is False
    assert record.status == "succeeded"  # the run was fine; its file is not any more
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "ops@example.com"]
    assert all(m.subject == f"[mcsite] Backup {record.filename} of survival fails its re-check" for m in mail.outbox)
    assert "bit rot" in mail.outbox[0].body and "checksum" in mail.outbox[0].body
    incident = AlertIncident.objects.get(kind="backup_recheck_failed")
    assert incident.subject == f"backup:{record.pk}" and incident.notified
    assert not AlertIncident.objects.filter(kind="corruption").exists()  # one alert, not two
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backup_recheck_failed")]
    assert len(lines) == 1 and f"backup_id={record.pk}" in lines[0] and "checksum" in lines[0]

    # Again: not due any more, and a re-run of the task alerts no one a second time.
    assert recheck_sweep() == [] and drain(node) == []
    work([("backups.tasks.recheck_backup", {"backup_id": record.pk})])
    assert len(mail.outbox) == 2

    # The history row says so, with the failed method's reason.
    client = Client()
    client.force_login(alice)
    page = client.get(f"/backup/{server.pk}").content.decode()
    assert 'data-testid="rechecked"' in page and "Re-checked" in page and "failed" in page
    assert 'data-method="checksum"' in page


def test_a_backup_that_passes_its_recheck_alerts_no_one(alice, make_server, take_backup, node, settings):
    settings.MCSITE_ALERT_EMAILS = ["ops@example.com"]
    record = take_backup(make_server(alice, node=node))
    _age(record, days=30)
    mail.outbox.clear()
    recheck_sweep()
    work(drain(node))
    record.refresh_from_db()
    assert record.verification_passed is True and record.rechecked_at is not None
    assert mail.outbox == [] and not AlertIncident.objects.exists()


def test_the_sample_rotates_oldest_first(alice, make_server, take_backup, node):
    config.settings_checks_set(recheck_batch=2)
    server = make_server(alice, node=node, world=False)
    records = [take_backup(server) for _ in range(5)]
    # Last checked 10 days ago for the first, a little later for each next one;
    # the third was re-checked (its rechecked_at counts, not verified_at).
    for i, record in enumerate(records):
        _age(record, days=10 - i * 0.1)
    _age(records[2], days=20)
    _age(records[2], days=9.65, field="rechecked_at")
    expected = [[records[0].pk, records[1].pk], [records[3].pk, records[2].pk], [records[4].pk]]
    for batch in expected:
        sent = recheck_sweep()
        assert sent == batch
        messages = drain(node)
        assert [kwargs["backup_id"] for _, kwargs in messages] == batch
        work(messages)
    assert recheck_sweep() == []  # every one checked just now
    assert all(r.rechecked_at for r in BackupRecord.objects.filter(pk__in=[r.pk for r in records]))


def test_recheck_days_zero_does_nothing(alice, make_server, take_backup, node):
    record = take_backup(make_server(alice, node=node, world=False))
    _age(record, days=365)
    config.settings_checks_set(recheck_days=0)
    assert BackupSettings.load().recheck_days == 0
    assert recheck_sweep() == [] and drain(node) == []
    record.refresh_from_db()
    assert record.rechecked_at is None


def test_deleted_active_and_unwritten_backups_are_never_picked(alice, make_server, take_backup, node):
    server = make_server(alice, node=node, world=False)
    other = make_server(alice, "other", node=node, world=False)
    kept = take_backup(server)
    deleted = take_backup(server)
    long_ago = timezone.now() - dt.timedelta(days=60)
    BackupRecord.objects.filter(pk=deleted.pk).update(status="deleted", deleted_at=long_ago)
    running = BackupRecord.objects.create(server=other, owner=alice, server_name="other", status="running",
                                          filename="server_backup_running.tar.gz",
                                          storage_path=f"server-{other.pk}/server_backup_running.tar.gz",
                                          created_at=long_ago, finished_at=None)
    failed_unwritten = BackupRecord.objects.create(server=server, owner=alice, server_name="survival",
                                                   status="failed", created_at=long_ago, finished_at=long_ago)
    for record in (kept, deleted, running, failed_unwritten):
        _age(record, days=60)
        _age(record, days=60, field="finished_at")
    assert recheck_sweep() == [kept.pk]
    assert [kwargs["backup_id"] for _, kwargs in drain(node)] == [kept.pk]


def test_a_backup_deleted_after_it_was_queued_is_left_alone(alice, make_server, take_backup, node):
    record = take_backup(make_server(alice, node=node, world=False))
    _age(record, days=8)
    recheck_sweep()
    messages = drain(node)
    BackupRecord.objects.filter(pk=record.pk).update(status="deleted")
    storage.remove_backup_file(record)
    work(messages)
    record.refresh_from_db()
    assert record.rechecked_at is None and not AlertIncident.objects.exists()


def test_a_file_gone_from_the_disk_is_a_failed_recheck(alice, make_server, take_backup, node, settings):
    settings.MCSITE_ALERT_EMAILS = []
    record = take_backup(make_server(alice, node=node))
    _age(record, days=8)
    storage.remove_backup_file(record)
    mail.outbox.clear()
    recheck_sweep()
    work(drain(node))
    record.refresh_from_db()
    assert record.rechecked_at is not None
    assert [m.to[0] for m in mail.outbox] == ["alice@example.com"]
    assert "its file is missing from the backup disk" in mail.outbox[0].body


def test_each_backup_is_sent_to_the_queue_of_its_servers_node(alice, make_server, take_backup, node, settings):
    here = make_server(alice, "here", node=node, world=False)
    there = make_server(alice, "there", node=f"{node}-b", world=False)
    Node.objects.create(name=f"{node}-b", last_heartbeat=timezone.now())
    drain(f"{node}-b")
    mine, theirs = take_backup(here), take_backup(there)
    _age(mine, days=8)
    _age(theirs, days=9)
    assert recheck_sweep() == [theirs.pk, mine.pk]
    assert drain(f"{node}-b") == [("backups.tasks.recheck_backup", {"backup_id": theirs.pk})]
    assert drain(node) == [("backups.tasks.recheck_backup", {"backup_id": mine.pk})]


def test_the_daily_sweep_is_a_system_task(admin_user):
    call_command("register_system_tasks", verbosity=0)
    task = PeriodicTask.objects.get(name="system:recheck-backups")
    assert task.task == "backups.tasks.recheck_backups" and task.enabled
    assert (task.interval.every, task.interval.period) == (1, "days")
    assert "backups.tasks.recheck_backups" in app.tasks and "backups.tasks.recheck_backup" in app.tasks


def test_the_settings_are_in_the_admin_and_checked(admin_user):
    BackupSettings.load()
    client = Client()
    client.force_login(admin_user)
    page = client.get("/admin/backups/backupsettings/1/change/").content.decode()
    assert 'name="recheck_days"' in page and 'name="recheck_batch"' in page
    form = {"compression": "gzip", "kdf_iterations": 600000, "verify_world": "on", "disk_warning_percent": 80,
            "disk_emergency_percent": 90, "safety_backup_days": 7, "recheck_days": 14, "recheck_batch": 25}
    assert client.post("/admin/backups/backupsettings/1/change/", form).status_code == 302
    row = BackupSettings.load()
    assert (row.recheck_days, row.recheck_batch) == (14, 25)
    for field, value in (("recheck_days", 366), ("recheck_batch", 0), ("recheck_days", -1), ("recheck_batch", True)):
        with pytest.raises(Exception) as raised:
            config.settings_checks_set(**{field: value})
        assert getattr(raised.value, "details", {}).get(field)
    row.refresh_from_db()
    assert (row.recheck_days, row.recheck_batch) == (14, 25)
