"""Issue #11 (B): a control character in a server name, one bad address or
one failing apprise URL never stops an alert from reaching everyone else.
Email through Django's locmem backend; apprise through real HTTP on 127.0.0.1."""

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend

from backups.alerts import alert_open, clean_title
from backups.models import AlertIncident
from backups.services.runs import backup_run, backup_trigger

pytestmark = pytest.mark.django_db

EVIL = "evil\r\nBcc: victim@example.com\r\n\r\nforged body"


class FlakyBackend(LocmemBackend):
    """locmem, except that a message to broken@example.com fails to send."""

    def send_messages(self, messages):
        for message in messages:
            if "broken@example.com" in message.recipients():
                raise ConnectionRefusedError("SMTP server said no")
        return super().send_messages(messages)


@pytest.fixture
def hooks(settings):
    """Two local webhooks: `ok` answers 200, `broken` answers 500."""
    received = {"ok": [], "broken": []}
    servers = []
    for name, status in (("broken", 500), ("ok", 200)):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self, name=name, status=status):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received[name].append(json.loads(body or b"{}"))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    received["urls"] = [f"json://127.0.0.1:{s.server_port}/hook" for s in servers]
    yield received
    for server in servers:
        server.shutdown()
        server.server_close()


def _fail_backup_of(server):
    record = backup_trigger(server=server, actor=server.owner, enqueue=False, precheck=False)
    backup_run(backup_id=record.pk)
    record.refresh_from_db()
    assert record.status == "failed"
    return record


def test_a_line_break_in_the_server_name_no_longer_stops_every_email(settings, alice):
    from servers.models import Server

    settings.MCSITE_ALERT_EMAILS = ["ops@example.com", "oncall@example.com"]
    server = Server.objects.create(owner=alice, name=EVIL, directory="gone")  # the ORM: no validation
    _fail_backup_of(server)
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "oncall@example.com", "ops@example.com"]
    for message in mail.outbox:
        assert len(message.to) == 1 and not message.cc and not message.bcc  # one message per recipient
        assert "\r" not in message.subject and "\n" not in message.subject
        assert message.subject == "[mcsite] Backup of evil Bcc: victim@example.com forged body failed"
        assert "victim@example.com" not in message.recipients()
        rendered = message.message().as_string()
        assert "\nBcc:" not in rendered
    assert AlertIncident.objects.get(kind="backup_failed").notified


def test_one_recipient_that_fails_does_not_stop_the_others(settings, alice, caplog):
    settings.EMAIL_BACKEND = "tests.backups.test_alert_delivery.FlakyBackend"
    settings.MCSITE_ALERT_EMAILS = ["broken@example.com", "not an address", "ops@example.com"]
    with caplog.at_level(logging.ERROR, logger="mcsite.alerts"):
        assert alert_open(kind="k", subject="site", title="Disk full", body="b", recipients_extra=["alice@example.com"])
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "ops@example.com"]
    failed = [r.getMessage() for r in caplog.records if "alert_email_failed" in r.getMessage()]
    assert len(failed) == 2
    assert any("broken@example.com" in line for line in failed)
    assert AlertIncident.objects.get(kind="k").notified


def test_one_failing_apprise_url_does_not_stop_the_others(settings, hooks, caplog):
    settings.MCSITE_ALERT_EMAILS = []
    settings.MCSITE_ALERT_URLS = [*hooks["urls"], "json://127.0.0.1:1/closed-port", "not a url at all"]
    with caplog.at_level(logging.ERROR, logger="mcsite.alerts"):
        assert alert_open(kind="k", subject="site", title="Backup of a\r\nb failed", body="body")
    assert len(hooks["ok"]) == 1 and len(hooks["broken"]) == 1
    assert hooks["ok"][0]["title"] == "[mcsite] Backup of a b failed"
    assert AlertIncident.objects.get(kind="k").notified  # one channel got it
    failed = [r.getMessage() for r in caplog.records if "alert_apprise_failed" in r.getMessage()]
    assert len(failed) == 3  # the 500, the closed port, the URL apprise cannot read
    assert not any("127.0.0.1" in line for line in failed)  # URLs may hold tokens: logged by position


def test_nothing_delivered_leaves_the_incident_not_notified(settings, hooks):
    settings.MCSITE_ALERT_EMAILS = []
    settings.MCSITE_ALERT_URLS = [hooks["urls"][0]]  # the broken one
    assert alert_open(kind="k", subject="site", title="t", body="b")
    assert not AlertIncident.objects.get(kind="k").notified


@pytest.mark.parametrize("raw, clean", [
    ("a\r\nb", "a b"),
    ("a\nb\rc\td", "a b c d"),
    ("nul\x00esc\x1b[31m", "nulesc[31m"),
    ("sep\u2028x\x85y", "sep x y"),
    ("  many   spaces\n\n", "many spaces"),
    ("Überleben 世界", "Überleben 世界"),
    ("x" * 500, "x" * 200 + "…"),
])
def test_clean_title(raw, clean):
    assert clean_title(raw) == clean
