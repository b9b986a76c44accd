"""Issue #12: owners choose which events email them about their own servers
— the "Alerts" page and GET/PUT /api/alerts/preferences/. An owner who
unticks `backup_failed` gets no email for it but still for the others; the
site-wide recipients get everything; nobody reads or changes someone else's
choice. Email through Django's locmem outbox."""

import datetime as dt

import pytest
from django.core import mail

from backups.alerts import ALERT_KINDS
from backups.models import AlertPreference
from backups.services import schedules
from backups.services.maintenance import dead_man_check
from backups.services.runs import backup_run, backup_trigger
from servers.models import Server

pytestmark = pytest.mark.django_db


def _fail_backup_of(server):
    record = backup_trigger(server=server, actor=server.owner, enqueue=False, precheck=False)
    backup_run(backup_id=record.pk)
    record.refresh_from_db()
    assert record.status == "failed"


def _dead_man(server):
    schedule = schedules.backup_schedule_create(
        server=server, data={"schedule_type": "daily", "schedule_time": dt.time(2)}, actor=server.owner)
    assert dead_man_check(now=schedule.created_at + dt.timedelta(days=3)) == [server.pk]


def _mailed():
    return sorted((m.to[0], m.subject) for m in mail.outbox)


def test_the_page_has_a_checkbox_per_event_and_the_owners_address(alice_web):
    body = alice_web.get("/alerts/").content.decode()
    assert 'href="/alerts"' in body  # in the navigation
    assert body.count('type="checkbox" name="events"') == len(ALERT_KINDS)
    for kind, label in ALERT_KINDS.items():
        assert f'value="{kind}"' in body and label in body
    assert body.count("checked") == len(ALERT_KINDS)  # no choice saved yet: every event
    assert "alice@example.com" in body and 'data-testid="no-email"' not in body
    assert "every event is on" in body


def test_the_page_says_when_the_owner_has_no_address(alice, alice_web):
    alice.email = ""
    alice.save()
    body = alice_web.get("/alerts").content.decode()
    assert 'data-testid="no-email"' in body and "no email address" in body


def _on(user) -> list:
    """The kinds the stored row leaves on (it stores what the user turned off)."""
    muted = AlertPreference.objects.get(user=user).muted
    return [kind for kind in ALERT_KINDS if kind not in muted]


def test_a_kind_added_in_a_later_version_is_on_for_someone_who_saved_choices_before(alice, alice_api):
    # Saved when "future_kind" did not exist: only what they turned off is stored.
    AlertPreference.objects.create(user=alice, muted=["backup_failed"])
    from backups import alerts

    assert alerts.owner_wants(alice.pk, "dead_man") and not alerts.owner_wants(alice.pk, "backup_failed")
    events = alice_api.get("/api/alerts/preferences/").json()["data"]["events"]
    assert events == [kind for kind in ALERT_KINDS if kind != "backup_failed"]


def test_an_owner_who_unticks_backup_failed_is_not_mailed_about_it_but_still_about_the_rest(
        alice, alice_web, settings):
    settings.MCSITE_ALERT_EMAILS = ["ops@example.com"]
    settings.MCSITE_ALERT_URLS = []
    wanted = [kind for kind in ALERT_KINDS if kind != "backup_failed"]
    response = alice_web.post("/alerts/", {"events": wanted}, follow=True)
    assert "Alert choices saved." in response.content.decode()
    assert _on(alice) == wanted
    page = alice_web.get("/alerts/").content.decode()
    assert 'value="backup_failed"' in page and page.count("checked") == len(wanted)

    server = Server.objects.create(owner=alice, name="survival", directory="gone")
    _fail_backup_of(server)
    assert _mailed() == [("ops@example.com", "[mcsite] Backup of survival failed")]  # site-wide only

    mail.outbox.clear()
    _dead_man(server)
    assert _mailed() == [("alice@example.com", "[mcsite] No successful backup of survival"),
                         ("ops@example.com", "[mcsite] No successful backup of survival")]


def test_an_owner_with_nothing_ticked_gets_no_email_and_without_a_choice_gets_every_one(
        alice, bob, alice_api, settings):
    settings.MCSITE_ALERT_EMAILS, settings.MCSITE_ALERT_URLS = [], []
    assert alice_api.put("/api/alerts/preferences/", {"events": []}, format="json").status_code == 200
    _fail_backup_of(Server.objects.create(owner=alice, name="a", directory="gone-a"))
    _fail_backup_of(Server.objects.create(owner=bob, name="b", directory="gone-b"))  # bob never chose
    assert _mailed() == [("bob@example.com", "[mcsite] Backup of b failed")]


def test_the_api_reads_and_replaces_the_callers_own_choice(alice_api):
    got = alice_api.get("/api/alerts/preferences/").json()
    assert got["success"] and got["data"]["events"] == list(ALERT_KINDS)
    assert got["data"]["customized"] is False and got["data"]["email"] == "alice@example.com"
    assert [c["kind"] for c in got["data"]["choices"]] == list(ALERT_KINDS)
    assert all(c["enabled"] and c["label"] for c in got["data"]["choices"])

    put = alice_api.put("/api/alerts/preferences", {"events": ["restore_failed", "corruption", "corruption"]},
                        format="json").json()
    assert put["success"] and put["message"] == "Alert preferences saved"
    assert put["data"]["events"] == ["corruption", "restore_failed"]  # known order, once each
    assert put["data"]["customized"] is True
    assert {c["kind"]: c["enabled"] for c in put["data"]["choices"]}["backup_failed"] is False
    assert alice_api.get("/api/alerts/preferences/").json()["data"]["events"] == ["corruption", "restore_failed"]


@pytest.mark.parametrize("body, field", [
    ({"events": ["backup_failed", "no_such_event"]}, "events"),
    ({"events": "backup_failed"}, "events"),
    ({"events": [1]}, "events"),
    ({}, "events"),
    (["backup_failed"], None),
])
def test_bad_input_is_refused_in_the_envelope_and_changes_nothing(alice, alice_api, body, field):
    AlertPreference.objects.create(user=alice, muted=[k for k in ALERT_KINDS if k != "dead_man"])
    response = alice_api.put("/api/alerts/preferences/", body, format="json")
    assert response.status_code == 400
    data = response.json()
    assert data["success"] is False and data["code"] == "VALIDATION_ERROR"
    if field:
        assert any(key.split(".")[0] == field for key in data["details"]), data["details"]
    assert _on(alice) == ["dead_man"]


def test_nobody_reads_or_changes_someone_elses_choice(alice, bob, alice_api, bob_api, bob_web, anon_api):
    AlertPreference.objects.create(user=alice, muted=[k for k in ALERT_KINDS if k != "dead_man"])
    assert bob_api.get("/api/alerts/preferences/").json()["data"]["events"] == list(ALERT_KINDS)  # his own
    assert bob_api.put("/api/alerts/preferences/", {"events": ["restore_failed"]}, format="json").status_code == 200
    bob_web.post("/alerts/", {"events": ["corruption"]})
    for user_param in ("?user=alice", f"?user_id={alice.pk}"):
        assert bob_api.get(f"/api/alerts/preferences/{user_param}").json()["data"]["events"] == ["corruption"]
    for user_param in ("?user=alice", f"?user_id={alice.pk}"):
        bob_api.put(f"/api/alerts/preferences/{user_param}", {"events": [], "user": alice.pk}, format="json")
    assert _on(bob) == []  # only ever his own
    assert _on(alice) == ["dead_man"]
    assert alice_api.get("/api/alerts/preferences/").json()["data"]["events"] == ["dead_man"]
    assert "bob@example.com" not in alice_api.get("/api/alerts/preferences/").content.decode()

    anonymous = anon_api.get("/api/alerts/preferences/")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "AUTHENTICATION_REQUIRED"
    assert anon_api.put("/api/alerts/preferences/", {"events": []}, format="json").status_code == 401


def test_the_page_needs_a_login(client):
    response = client.get("/alerts/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
