"""Issue #12: alert channels set up in the admin. An apprise URL or an email
address added there gets the next incident's alert (apprise: a real HTTP
POST to a webhook on 127.0.0.1; email: Django's locmem outbox), its "Send a
test alert" button delivers through the same path and shows exactly what
failed, the target is never shown again (pages, logs), a disabled channel
gets nothing, and only superusers manage channels."""

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.test import Client

from backups import alerts
from backups.models import AlertChannel, AlertIncident
from backups.services.runs import backup_run, backup_trigger
from mcsite.models import AuditEvent

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-T0ken-4711"


class Received(list):
    url = ""


@pytest.fixture
def hook(settings):
    """A local webhook answering 200; `received` holds each JSON body."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.MCSITE_ALERT_URLS = []
    settings.MCSITE_ALERT_EMAILS = []
    # The token sits in the password and in the path: neither may ever show.
    received.url = f"json://mcsite:{SECRET}@127.0.0.1:{server.server_port}/{SECRET}-path"
    yield received
    server.shutdown()
    server.server_close()


@pytest.fixture
def admin_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def _add_channel(client, **fields):
    data = {"name": "ops", "kind": "apprise", "target": "", "enabled": "on", **fields}
    if data["enabled"] is False:
        del data["enabled"]
    return client.post("/admin/backups/alertchannel/add/", data)


def _fail_backup_of(server):
    record = backup_trigger(server=server, actor=server.owner, enqueue=False, precheck=False)
    backup_run(backup_id=record.pk)
    record.refresh_from_db()
    assert record.status == "failed"
    return record


def _gone_server(owner):
    from servers.models import Server

    return Server.objects.create(owner=owner, name="survival", directory="gone")  # its folder does not exist


def test_an_apprise_channel_added_in_the_admin_gets_the_next_incidents_alert(admin_client, hook, alice):
    response = _add_channel(admin_client, name="Discord of the ops", target=hook.url)
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = AlertChannel.objects.get()
    assert channel.target == hook.url and channel.target_hint == "json://…" and channel.enabled
    assert SECRET not in channel.target_sealed  # sealed at rest

    server = _gone_server(alice)
    _fail_backup_of(server)
    assert len(hook) == 1
    assert hook[0]["title"] == "[mcsite] Backup of survival failed"
    assert "SERVER_DIRECTORY_NOT_FOUND" in hook[0]["message"]
    assert AlertIncident.objects.get(kind="backup_failed").notified
    _fail_backup_of(server)
    assert len(hook) == 1  # the same incident: silent


def test_an_email_channel_added_in_the_admin_gets_the_alert(admin_client, settings, alice):
    settings.MCSITE_ALERT_URLS, settings.MCSITE_ALERT_EMAILS = [], []
    alice.email = ""
    alice.save()
    assert _add_channel(admin_client, name="on-call", kind="email", target="oncall@example.com").status_code == 302
    assert AlertChannel.objects.get().target_hint == "oncall@example.com"
    _fail_backup_of(_gone_server(alice))
    assert [m.to for m in mail.outbox] == [["oncall@example.com"]]
    assert mail.outbox[0].subject == "[mcsite] Backup of survival failed"


def test_a_disabled_channel_gets_nothing(admin_client, hook, settings, alice):
    _add_channel(admin_client, name="hook", target=hook.url, enabled=False)
    _add_channel(admin_client, name="mail", kind="email", target="quiet@example.com", enabled=False)
    assert AlertChannel.objects.filter(enabled=False).count() == 2
    alice.email = ""
    alice.save()
    _fail_backup_of(_gone_server(alice))
    assert hook == [] and mail.outbox == []
    assert not AlertIncident.objects.get(kind="backup_failed").notified


def test_one_failing_channel_does_not_stop_the_others(hook, settings, caplog):
    bad = AlertChannel(name="closed port", kind="apprise")
    bad.target = f"json://user:{SECRET}@127.0.0.1:1/{SECRET}"
    bad.save()
    good = AlertChannel(name="good", kind="apprise")
    good.target = hook.url
    good.save()
    with caplog.at_level(logging.DEBUG):
        assert alerts.alert_open(kind="k", subject="site", title="Disk full", body="b")
    assert len(hook) == 1
    failed = [r.getMessage() for r in caplog.records if "alert_channel_failed" in r.getMessage()]
    assert len(failed) == 1 and "channel=\"closed port\"" in failed[0] and "Connection error" in failed[0]
    assert not any(SECRET in r.getMessage() for r in caplog.records)


def test_the_target_is_never_shown_after_saving_nor_logged(admin_client, hook, caplog, settings):
    with caplog.at_level(logging.DEBUG):
        _add_channel(admin_client, name="hook", target=hook.url)
        channel = AlertChannel.objects.get()
        pages = [
            admin_client.get("/admin/backups/alertchannel/"),
            admin_client.get(f"/admin/backups/alertchannel/{channel.pk}/change/"),
            admin_client.get(f"/admin/backups/alertchannel/{channel.pk}/history/"),
            admin_client.post(f"/admin/backups/alertchannel/{channel.pk}/test/", follow=True),
            admin_client.get(f"/admin/mcsite/auditevent/"),
        ]
        alerts.alert_open(kind="k", subject="site", title="t", body="b")
    assert len(hook) == 2  # the test alert and the real one
    for page in pages:
        body = page.content.decode()
        assert page.status_code == 200, body[:500]
        assert SECRET not in body
    change_page = pages[1].content.decode()
    assert "json://…" in change_page
    assert re.search(r'<input type="password" name="target"[^>]*>', change_page)
    assert 'value="json' not in change_page
    assert not any(SECRET in record.getMessage() for record in caplog.records)
    app_log = Path(django_settings.MCSITE_LOG_DIR) / "app.log"
    if app_log.exists():
        assert SECRET not in app_log.read_text(errors="replace")
    assert not any(SECRET in json.dumps(e.detail) for e in AuditEvent.objects.all())


def test_saving_without_a_new_target_keeps_the_stored_one(admin_client, hook):
    _add_channel(admin_client, name="hook", target=hook.url)
    channel = AlertChannel.objects.get()
    response = admin_client.post(f"/admin/backups/alertchannel/{channel.pk}/change/",
                                 {"name": "renamed", "kind": "apprise", "target": ""})
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.target, channel.enabled) == ("renamed", hook.url, False)


@pytest.mark.parametrize("kind, target, message", [
    ("email", "not an address", "Enter a valid email address."),
    ("apprise", "nosuchservice://abc/def", "Apprise cannot read this URL"),
    ("apprise", "json://a json://b", "Enter one apprise URL"),
    ("apprise", "", "Enter the target"),
])
def test_a_bad_target_is_refused_and_nothing_is_saved(admin_client, kind, target, message, caplog):
    with caplog.at_level(logging.DEBUG):
        response = _add_channel(admin_client, kind=kind, target=target)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AlertChannel.objects.exists()
    if target:
        assert not any(target in r.getMessage() for r in caplog.records)  # not even apprise's complaint


def test_changing_the_kind_needs_a_target_of_that_kind(admin_client):
    _add_channel(admin_client, name="mail", kind="email", target="ops@example.com")
    channel = AlertChannel.objects.get()
    response = admin_client.post(f"/admin/backups/alertchannel/{channel.pk}/change/",
                                 {"name": "mail", "kind": "apprise", "target": "", "enabled": "on"})
    assert response.status_code == 200 and "enter it again for the new kind" in response.content.decode()
    channel.refresh_from_db()
    assert channel.kind == "email"


def test_the_test_button_delivers_and_shows_it(admin_client, hook):
    _add_channel(admin_client, name="hook", target=hook.url)
    channel = AlertChannel.objects.get()
    page = admin_client.get(f"/admin/backups/alertchannel/{channel.pk}/change/").content.decode()
    assert "Send a test alert" in page and "never tested" in page
    response = admin_client.post(f"/admin/backups/alertchannel/{channel.pk}/test/", follow=True)
    body = response.content.decode()
    assert "A test alert was delivered to “hook” (json://…)" in body
    assert len(hook) == 1 and hook[0]["title"] == "[mcsite] Test alert"
    channel.refresh_from_db()
    assert channel.last_test_ok is True and channel.last_test_error == "" and channel.last_test_at
    assert "Delivered" in body
    assert AuditEvent.objects.filter(action="alert_channel.test", outcome="success").exists()


def test_the_test_button_shows_what_failed_for_an_unreachable_channel(admin_client, settings):
    settings.MCSITE_ALERT_URLS, settings.MCSITE_ALERT_EMAILS = [], []
    _add_channel(admin_client, name="nobody home", target=f"json://u:{SECRET}@127.0.0.1:1/{SECRET}")
    channel = AlertChannel.objects.get()
    body = admin_client.post(f"/admin/backups/alertchannel/{channel.pk}/test/", follow=True).content.decode()
    channel.refresh_from_db()
    assert channel.last_test_ok is False
    assert channel.last_test_error.startswith("the service did not accept it: A Connection error occurred")
    assert "The test alert to “nobody home” failed: the service did not accept it" in body
    assert "Failed" in body and SECRET not in body and SECRET not in channel.last_test_error


def test_the_test_button_of_an_email_channel_sends_a_mail(admin_client, settings):
    settings.MCSITE_ALERT_EMAILS = ["env@example.com"]
    _add_channel(admin_client, name="mail", kind="email", target="ops@example.com", enabled=False)
    channel = AlertChannel.objects.get()
    admin_client.post(f"/admin/backups/alertchannel/{channel.pk}/test/")
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]  # that channel only, even while disabled
    channel.refresh_from_db()
    assert channel.last_test_ok is True


def test_the_list_action_tests_each_selected_channel(admin_client, hook):
    _add_channel(admin_client, name="good", target=hook.url)
    _add_channel(admin_client, name="bad", target="json://127.0.0.1:1/")
    response = admin_client.post("/admin/backups/alertchannel/", {
        "action": "send_test_selected", ACTION_CHECKBOX_NAME: [c.pk for c in AlertChannel.objects.all()]},
        follow=True)
    body = response.content.decode()
    assert len(hook) == 1
    assert "A test alert was delivered to “good”" in body and "The test alert to “bad” failed" in body
    assert dict(AlertChannel.objects.values_list("name", "last_test_ok")) == {"good": True, "bad": False}


def test_only_superusers_manage_channels(alice, hook):
    channel = AlertChannel(name="hook", kind="apprise")
    channel.target = hook.url
    channel.save()
    owner = Client()
    owner.force_login(alice)  # staff, with every backups permission of the Owners group
    assert owner.get("/admin/backups/alertchannel/").status_code == 403
    assert owner.get(f"/admin/backups/alertchannel/{channel.pk}/change/").status_code == 403
    assert owner.post(f"/admin/backups/alertchannel/{channel.pk}/test/").status_code == 403
    assert "alertchannel" not in owner.get("/admin/").content.decode()
    assert hook == []


def test_every_alert_kind_in_the_code_has_a_label():
    """An alert_open(kind="…") without a label would be a kind owners cannot choose."""
    root = Path(__file__).resolve().parents[2]
    kinds = set()
    for folder in ("backups", "servers"):
        for path in (root / folder).rglob("*.py"):
            kinds |= set(re.findall(r'alert_open\(\s*kind="([a-z_]+)"', path.read_text()))
            kinds |= set(re.findall(r'ALERT_KIND\s*=\s*"([a-z_]+)"', path.read_text()))
    assert kinds, "found no alert kinds"
    assert kinds - set(alerts.ALERT_KINDS) - set(alerts.SITE_ALERT_KINDS) == set()


def test_an_address_that_is_also_a_channel_gets_one_message(admin_client, settings, alice):
    settings.MCSITE_ALERT_URLS, settings.MCSITE_ALERT_EMAILS = [], ["ops@example.com"]
    alice.email = "Alice@Example.com"
    alice.save()
    _add_channel(admin_client, name="ops", kind="email", target="ops@example.com")
    _add_channel(admin_client, name="alice too", kind="email", target="alice@example.com")
    _fail_backup_of(_gone_server(alice))
    assert sorted(address for m in mail.outbox for address in m.to) == ["Alice@Example.com", "ops@example.com"]
