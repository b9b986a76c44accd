"""Issue #12: retention by count and grandfather-father-son beside days.

A backup is kept when any rule keeps it, as restic's `forget` does: the days
rule keeps what is younger than retention_days; keep_last the newest N
successful backups; keep_hourly/daily/weekly/monthly the newest successful
backup of each of the last N hours/days/ISO weeks/months that have one,
wall-clock in the site zone. Locked and safety backups are outside the count
rules; the newest successful backup always stays; the emergency rule still
keeps only 3 per server. Disk usage is injected, not faked by filling the disk.
"""

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from backups import storage
from backups.models import BackupRecord, BackupSchedule
from backups.services import schedules
from backups.services.retention import RetentionPolicy, retention_apply, retention_plan, retention_preview
from mcsite.errors import DomainError

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
_ids = itertools.count(1)


def rec(at: dt.datetime, *, status="succeeded", locked=False, trigger="scheduled") -> BackupRecord:
    """An unsaved record (the policy is a pure function of the records)."""
    return BackupRecord(id=next(_ids), filename=f"b{at:%Y%m%d_%H%M}.tar.gz", created_at=at, status=status,
                        locked=locked, trigger=trigger, size_bytes=100)


def plan(records, *, now, zone=UTC, emergency=False, safety_days=7, in_use=frozenset(), **policy):
    return retention_plan(records, policy=RetentionPolicy(**policy), now=now, emergency=emergency,
                          safety_days=safety_days, in_use=in_use, zone=zone)


def kept(p) -> set:
    return {d.record.id for d in p.kept}


def rules(p, record) -> list:
    return next(d.kept_by for d in p.decisions if d.record is record)


def reason(p, record):
    return next(d.reason for d in p.decisions if d.record is record)


T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
LATER = T0 + dt.timedelta(days=400)  # every test record is older than any retention_days used below


# --- the pure policy -------------------------------------------------------------

def test_days_alone_is_the_seeds_rule_and_the_newest_success_stays():
    old = [rec(T0 + dt.timedelta(hours=h)) for h in range(5)]
    young = rec(LATER - dt.timedelta(hours=1))
    p = plan([*old, young], now=LATER, retention_days=1)
    assert kept(p) == {young.id}
    assert rules(p, young) == ["days", "newest"]
    assert {reason(p, r) for r in old} == {"age"}

    p = plan(old, now=LATER, retention_days=1)  # all old: the newest successful one still stays
    assert kept(p) == {old[-1].id} and rules(p, old[-1]) == ["newest"]


def test_keep_last_keeps_the_newest_n_successful_backups_whatever_their_age():
    backups = [rec(T0 + dt.timedelta(hours=h)) for h in range(10)]
    p = plan(backups, now=LATER, retention_days=1, keep_last=3)
    assert kept(p) == {b.id for b in backups[-3:]}
    assert all("last" in rules(p, b) for b in backups[-3:])


def test_keep_hourly_keeps_the_newest_of_each_of_the_last_n_hours_that_have_one():
    """restic: an hour without a backup does not use up a place."""
    a, b = rec(T0.replace(hour=10, minute=5)), rec(T0.replace(hour=10, minute=40))
    c = rec(T0.replace(hour=11, minute=10))
    d = rec(T0.replace(hour=13, minute=20))  # nothing at 12:xx
    p = plan([a, b, c, d], now=LATER, retention_days=1, keep_hourly=3)
    assert kept(p) == {b.id, c.id, d.id}
    assert rules(p, b) == ["hourly"] and reason(p, a) == "age"


def test_keep_daily_keeps_the_last_backup_of_each_day():
    backups = [rec(T0.replace(hour=0) + dt.timedelta(days=day, hours=h)) for day in range(5) for h in (1, 9, 17)]
    p = plan(backups, now=LATER, retention_days=1, keep_daily=3)
    assert kept(p) == {b.id for b in backups if b.created_at.hour == 17 and b.created_at.day >= 4}
    assert len(kept(p)) == 3


def test_keep_weekly_uses_iso_weeks_monday_to_sunday():
    sunday = rec(dt.datetime(2026, 3, 8, 20, 0, tzinfo=UTC))
    monday = rec(dt.datetime(2026, 3, 9, 8, 0, tzinfo=UTC))
    saturday = rec(dt.datetime(2026, 3, 7, 8, 0, tzinfo=UTC))
    earlier_week = rec(dt.datetime(2026, 3, 1, 8, 0, tzinfo=UTC))  # a Sunday: the ISO week before
    p = plan([sunday, monday, saturday, earlier_week], now=LATER, retention_days=1, keep_weekly=2)
    # Week of 9 March: monday. Week of 2 March: sunday (its newest). Not saturday, not the week before.
    assert kept(p) == {monday.id, sunday.id}


def test_keep_monthly_uses_calendar_months():
    backups = [rec(dt.datetime(2026, m, d, 3, 0, tzinfo=UTC)) for m in (1, 2, 3, 4) for d in (1, 15, 28)]
    p = plan(backups, now=LATER, retention_days=1, keep_monthly=2)
    assert {(d.record.created_at.month, d.record.created_at.day) for d in p.kept} == {(4, 28), (3, 28)}


def test_a_backup_is_kept_when_any_rule_keeps_it_and_says_by_which():
    hourly = [rec(T0 + dt.timedelta(hours=h)) for h in range(72)]  # three days, every hour
    p = plan(hourly, now=LATER, retention_days=1, keep_last=2, keep_hourly=4, keep_daily=3)
    newest = hourly[-1]
    assert rules(p, newest) == ["last", "hourly", "daily", "newest"]
    # Days run 12:00 on 2 March to 11:00 on 5 March: the newest of 5, 4 and 3 March.
    last_of_days = {r.id for r in hourly if r.created_at.hour == 23 and r.created_at.day in (3, 4)}
    assert kept(p) == {r.id for r in hourly[-4:]} | last_of_days
    by = p.kept_by()
    assert (by["last"], by["hourly"], by["daily"], by["newest"], by["days"]) == (2, 4, 3, 1, 0)


def test_only_successful_unlocked_regular_backups_fill_count_places():
    """A failed-verification backup with a file is kept only by the days rule;
    locked and safety backups neither use up a place nor hide an older one."""
    day = T0.replace(hour=0)
    ok_morning = rec(day.replace(hour=8))
    failed_evening = rec(day.replace(hour=20), status="failed")
    locked_noon_next = rec(day + dt.timedelta(days=1, hours=12), locked=True)
    ok_next_morning = rec(day + dt.timedelta(days=1, hours=6))
    safety_next_evening = rec(day + dt.timedelta(days=1, hours=22), trigger="safety")
    records = [ok_morning, failed_evening, locked_noon_next, ok_next_morning, safety_next_evening]
    p = plan(records, now=LATER, retention_days=1, keep_daily=2, keep_last=2)
    assert rules(p, ok_morning) == ["last", "daily"]
    assert rules(p, ok_next_morning) == ["last", "daily"]
    assert reason(p, failed_evening) == "age"
    assert rules(p, locked_noon_next) == ["locked", "newest"]  # the newest success: a locked one counts
    assert reason(p, safety_next_evening) == "age"  # expired after safety_backup_days, count rules or not


def test_safety_backups_keep_their_own_days():
    fresh = rec(LATER - dt.timedelta(days=2), trigger="safety")
    old = rec(LATER - dt.timedelta(days=8), trigger="safety")
    p = plan([fresh, old], now=LATER, retention_days=1, keep_last=5, safety_days=7)
    assert rules(p, fresh) == ["safety"] and reason(p, old) == "age"


def test_the_emergency_rule_still_keeps_only_three_whatever_the_count_rules_say():
    recent = [rec(LATER - dt.timedelta(hours=h)) for h in range(1, 8)]
    locked = rec(LATER - dt.timedelta(days=30), locked=True)
    p = plan([*recent, locked], now=LATER, emergency=True, retention_days=30, keep_last=10, keep_hourly=24)
    assert kept(p) == {r.id for r in recent[:3]} | {locked.id}
    assert {reason(p, r) for r in recent[3:]} == {"emergency"}


def test_a_backup_a_restore_reads_is_never_deleted():
    old = rec(T0)
    newer = rec(T0 + dt.timedelta(days=1))
    p = plan([old, newer], now=LATER, retention_days=1, in_use={old.id})
    assert rules(p, old) == ["in_use"]


def _hourly(start: dt.datetime, end: dt.datetime, minute: int = 0) -> list:
    out, at = [], start.replace(minute=minute)
    while at <= end:
        out.append(rec(at))
        at += dt.timedelta(hours=1)
    return out


def test_done_when_hourly_backups_kept_two_days_and_one_a_day_for_a_month():
    """The issue's "Done when": 40 days of hourly backups, retention_days=2 and
    keep_daily=30: every backup of the last 48 hours stays, and before that
    exactly the last backup of each day, for the newest 30 days that have one."""
    zone = BERLIN
    now = dt.datetime(2026, 6, 20, 10, 30, tzinfo=zone)
    backups = _hourly(now - dt.timedelta(days=40), now - dt.timedelta(minutes=15), minute=15)
    assert len(backups) == 961  # 10:15 on 11 May to 10:15 on 20 June
    p = plan(backups, now=now, zone=zone, retention_days=2, keep_daily=30)
    cutoff = now - dt.timedelta(days=2)
    young = {b.id for b in backups if b.created_at >= cutoff}
    assert len(young) == 48 and young <= kept(p)
    days = sorted({timezone.localtime(b.created_at, zone).date() for b in backups}, reverse=True)[:30]
    last_of_day = {max((b for b in backups if timezone.localtime(b.created_at, zone).date() == day),
                       key=lambda b: b.created_at).id for day in days}
    assert kept(p) == young | last_of_day
    assert days[-1] == dt.date(2026, 5, 22)  # one a day for a month
    assert len(kept(p)) == 48 + 30 - 3  # the last of 20, 19 and 18 June are also within 48 hours
    assert all(reason(p, d.record) == "age" for d in p.deleted)


def test_daily_buckets_are_wall_clock_days_in_the_site_zone_across_dst():
    """Europe/Berlin: 29 March 2026 has 23 hours, 25 October 2026 has 25. The
    kept backup of each day is the one at 23:xx Berlin time (in UTC 21:xx in
    summer, 22:xx in winter), never one of the next day's first hours."""
    for first, last in ((dt.datetime(2026, 3, 25, 0, 10, tzinfo=UTC), dt.datetime(2026, 4, 2, 21, 10, tzinfo=UTC)),
                        (dt.datetime(2026, 10, 21, 0, 10, tzinfo=UTC), dt.datetime(2026, 10, 29, 22, 10, tzinfo=UTC))):
        backups = _hourly(first, last, minute=10)
        p = plan(backups, now=last + dt.timedelta(days=100), zone=BERLIN, retention_days=1, keep_daily=7)
        local = sorted(timezone.localtime(d.record.created_at, BERLIN) for d in p.kept)
        assert len(local) == 7
        assert {t.strftime("%H:%M") for t in local} == {"23:10"}, local
        assert [t.date() for t in local] == sorted({t.date() for t in local})  # one per day, seven days
    change_day = [b for b in _hourly(dt.datetime(2026, 10, 24, 22, 10, tzinfo=UTC),
                                     dt.datetime(2026, 10, 25, 22, 10, tzinfo=UTC), minute=10)
                  if timezone.localtime(b.created_at, BERLIN).date() == dt.date(2026, 10, 25)]
    assert len(change_day) == 25


def test_the_hour_that_happens_twice_is_one_hourly_bucket():
    """Clocks go back at 03:00 CEST on 25 October 2026: 02:10 happens twice
    (00:10 and 01:10 UTC); wall-clock hours make them one bucket."""
    first, second = rec(dt.datetime(2026, 10, 25, 0, 10, tzinfo=UTC)), rec(dt.datetime(2026, 10, 25, 1, 10, tzinfo=UTC))
    before = rec(dt.datetime(2026, 10, 24, 23, 10, tzinfo=UTC))  # 01:10 CEST
    p = plan([before, first, second], now=LATER, zone=BERLIN, retention_days=1, keep_hourly=2)
    assert kept(p) == {second.id, before.id}


def test_the_policy_in_words():
    assert RetentionPolicy(retention_days=30).describe() == "Keeps 30 days"
    assert RetentionPolicy(retention_days=2, keep_daily=30).describe() == "Keeps 2 days, and one a day for 30 days"
    assert RetentionPolicy(retention_days=1, keep_last=5, keep_hourly=1, keep_weekly=8,
                           keep_monthly=12).describe() == (
        "Keeps 1 day, the newest 5, one an hour for 1 hour, one a week for 8 weeks, and one a month for 12 months")


# --- applied to stored backups -----------------------------------------------------


@pytest.fixture
def server(alice, make_server):
    server = make_server(alice, world=False)
    schedules.backup_schedule_create(server=server, data={"schedule_type": "hourly", "schedule_time": dt.time(0),
                                                          "interval_hours": 1, "retention_days": 2,
                                                          "keep_daily": 30}, actor=alice)
    server.refresh_from_db()
    return server


def _stored(server, at: dt.datetime, **fields) -> BackupRecord:
    name = f"server_backup_{at:%Y%m%d_%H%M%S}_{next(_ids)}.tar.gz"
    path = storage.server_backup_dir(server.pk) / name
    path.write_bytes(b"x" * 100)
    return BackupRecord.objects.create(
        server=server, owner=server.owner, server_name=server.name, filename=name,
        storage_path=storage.relative_path(path), status=fields.pop("status", "succeeded"), size_bytes=100,
        created_at=at, trigger=fields.pop("trigger", "scheduled"), **fields)


def _forty_days_hourly(server, now) -> list:
    """Every hour for 40 days, half an hour off the hour `now` is at, so
    that the days rule's edge falls between two backups."""
    at, out = now - dt.timedelta(days=40) + dt.timedelta(minutes=30), []
    while at < now:
        out.append(_stored(server, at))
        at += dt.timedelta(hours=1)
    return out


def _expected_two_days_and_thirty_daily(backups, now, zone=BERLIN) -> set:
    """Worked out apart from the code under test: the last 48 hours, and the
    last backup of each of the newest 30 local days."""
    young = {b.pk for b in backups if b.created_at >= now - dt.timedelta(days=2)}
    assert len(young) == 48
    by_day = {}
    for b in backups:
        by_day.setdefault(timezone.localtime(b.created_at, zone).date(), []).append(b)
    days = sorted(by_day, reverse=True)[:30]
    return young | {max(by_day[day], key=lambda b: b.created_at).pk for day in days}


@pytest.mark.django_db
def test_stored_hourly_backups_keep_two_days_and_one_a_day_for_a_month(server, settings, caplog):
    settings.MCSITE_TIME_ZONE = "Europe/Berlin"
    now = timezone.now()
    backups = _forty_days_hourly(server, now)
    deleted = retention_apply(server=server, disk_percent=10, now=now)
    alive = list(BackupRecord.objects.filter(server=server, status="succeeded").order_by("created_at"))
    assert {r.pk for r in alive} == _expected_two_days_and_thirty_daily(backups, now)
    assert len(deleted) == len(backups) - len(alive)
    assert all(storage.file_present(r) for r in alive)
    assert not any(storage.file_present(r) for r in deleted)
    older = [r for r in alive if r.created_at < now - dt.timedelta(days=2)]
    local_days = [timezone.localtime(r.created_at, BERLIN).date() for r in older]
    assert len(local_days) == len(set(local_days))  # one a day before the last two days
    line = next(r.getMessage() for r in caplog.records if "retention_deleted" in r.getMessage())
    assert "reason=age" in line and "retention_days=2" in line and "keep_daily=30" in line and "keep_last" not in line


@pytest.mark.django_db
def test_the_preview_deletes_nothing_and_matches_what_retention_then_deletes(server):
    now = timezone.now()
    backups = _forty_days_hourly(server, now)
    _stored(server, now - dt.timedelta(days=39), locked=True)
    policy = RetentionPolicy.of(server.backup_schedule).changed(retention_days=1, keep_daily=None, keep_weekly=3)
    preview = retention_preview(server=server, policy=policy, disk_percent=10, now=now)
    assert BackupRecord.objects.filter(server=server, status="deleted").count() == 0
    assert all(storage.file_present(b) for b in backups)
    schedules.backup_schedule_update(schedule=server.backup_schedule,
                                     data={"retention_days": 1, "keep_daily": None, "keep_weekly": 3},
                                     actor=server.owner)
    server.refresh_from_db()
    deleted = retention_apply(server=server, disk_percent=10, now=now)
    assert sorted(r.pk for r in deleted) == sorted(d.record.pk for d in preview.deleted)
    assert len(preview.kept) == BackupRecord.objects.filter(server=server).exclude(status="deleted").count()
    assert preview.kept_by()["locked"] == 1


@pytest.mark.django_db
def test_a_real_backup_run_applies_the_count_rules(take_backup, make_server, alice):
    """After a real backup, retention runs with the schedule's rules: keep_last=1
    and one day leave only the new backup of all the old ones."""
    world = make_server(alice, "gfs-world")
    schedules.backup_schedule_create(server=world, data={"schedule_type": "daily", "schedule_time": dt.time(3),
                                                         "retention_days": 1, "keep_last": 1}, actor=alice)
    world.refresh_from_db()
    old = [_stored(world, timezone.now() - dt.timedelta(days=d)) for d in (3, 4, 5)]
    new = take_backup(world)
    assert [BackupRecord.objects.get(pk=r.pk).status for r in old] == ["deleted"] * 3
    assert BackupRecord.objects.get(pk=new.pk).status == "succeeded"


@pytest.mark.django_db
@pytest.mark.parametrize("value", [0, -1, 1001, "5", 5.0, True])
def test_the_service_refuses_bad_counts_and_changes_nothing(server, value):
    with pytest.raises(DomainError) as info:
        schedules.backup_schedule_update(schedule=server.backup_schedule, data={"keep_weekly": value},
                                         actor=server.owner)
    assert info.value.code == "VALIDATION_ERROR" and "keep_weekly" in info.value.details
    schedule = BackupSchedule.objects.get(server=server)
    assert (schedule.keep_weekly, schedule.keep_daily) == (None, 30)


# --- the API -------------------------------------------------------------------------


@pytest.fixture
def quiet_disk(monkeypatch):
    """The disk is at 10 % (the emergency rule has its own tests)."""
    monkeypatch.setattr("backups.services.retention.disk_usage_percent", lambda node=None: 10.0)


@pytest.mark.django_db
def test_the_schedule_api_reads_and_writes_the_count_rules(alice_api, server):
    url = f"/api/backups/schedules/{server.pk}"
    data = alice_api.get(url).json()["data"]
    assert {k: data[k] for k in ("retention_days", "keep_last", "keep_hourly", "keep_daily", "keep_weekly",
                                 "keep_monthly")} == {"retention_days": 2, "keep_last": None, "keep_hourly": None,
                                                      "keep_daily": 30, "keep_weekly": None, "keep_monthly": None}
    assert data["retention_description"] == "Keeps 2 days, and one a day for 30 days"
    response = alice_api.patch(url, {"keep_weekly": 8, "keep_daily": None, "keep_last": 5}, format="json")
    assert response.status_code == 200, response.json()
    schedule = BackupSchedule.objects.get(server=server)
    assert (schedule.keep_last, schedule.keep_daily, schedule.keep_weekly) == (5, None, 8)
    assert response.json()["data"]["retention_description"] == "Keeps 2 days, the newest 5, and one a week for 8 weeks"
    writable = ("schedule_type", "schedule_time", "interval_hours", "cron_expression", "retention_days", "keep_last",
                "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "enabled", "compression", "encrypt")
    echo = {k: data[k] for k in writable} | {"keep_monthly": 12}  # the fields read back can be sent back
    response = alice_api.put(url, echo, format="json")
    assert response.status_code == 200, response.json()
    schedule = BackupSchedule.objects.get(server=server)
    assert (schedule.keep_last, schedule.keep_daily, schedule.keep_weekly, schedule.keep_monthly) == (None, 30, None, 12)


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly"])
@pytest.mark.parametrize("value", [0, -3, 1001, "5", 5.5, True, [5]])
def test_bad_counts_are_refused_in_the_envelope_and_change_nothing(alice_api, server, field, value):
    for method, url, body in (
            ("put", f"/api/backups/schedules/{server.pk}", {field: value}),
            ("patch", f"/api/backups/schedules/{server.pk}", {field: value}),
            ("post", f"/api/backups/schedules/{server.pk}/retention-preview", {field: value})):
        response = getattr(alice_api, method)(url, body, format="json")
        assert response.status_code == 400, (method, response.json())
        body = response.json()
        assert body["success"] is False and body["code"] == "VALIDATION_ERROR" and field in body["details"]
    schedule = BackupSchedule.objects.get(server=server)
    assert (schedule.keep_last, schedule.keep_hourly, schedule.keep_daily, schedule.keep_weekly,
            schedule.keep_monthly) == (None, None, 30, None, None)


@pytest.mark.django_db
def test_creating_a_schedule_with_a_bad_count_creates_nothing(alice_api, alice, make_server):
    other = make_server(alice, "other", world=False)
    response = alice_api.post("/api/backups/schedules", {"server_id": other.pk, "schedule_type": "daily",
                                                         "schedule_time": "02:00", "retention_days": 7,
                                                         "keep_daily": 0}, format="json")
    assert response.status_code == 400 and "keep_daily" in response.json()["details"]
    assert not BackupSchedule.objects.filter(server=other).exists()


@pytest.mark.django_db
def test_the_preview_endpoint_lists_what_would_go_and_changes_nothing(alice_api, server, quiet_disk):
    now = timezone.now()
    backups = _forty_days_hourly(server, now)
    url = f"/api/backups/schedules/{server.pk}/retention-preview/"
    response = alice_api.post(url, {"keep_daily": 7}, format="json")  # retention_days stays 2
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    # Before anything ran, the current policy (2 days + 30 daily) would already delete the rest:
    current = alice_api.post(url, {}, format="json").json()["data"]
    assert current["kept"] == len(_expected_two_days_and_thirty_daily(backups, now, zone=UTC))
    assert data["kept"] == current["kept"] - 23
    assert data["kept_by"]["days"] == 48 and data["kept_by"]["daily"] == 7 and data["kept_by"]["newest"] == 1
    assert data["retention_description"] == "Keeps 2 days, and one a day for 7 days"
    first = data["would_delete"][0]
    assert set(first) == {"id", "filename", "created_at", "size_bytes", "reason"} and first["reason"] == "age"
    assert first["size_bytes"] == 100
    # Nothing changed: the schedule, the records, the files.
    schedule = BackupSchedule.objects.get(server=server)
    assert (schedule.retention_days, schedule.keep_daily) == (2, 30)
    assert not BackupRecord.objects.filter(server=server, status="deleted").exists()
    assert all(storage.file_present(b) for b in backups)
    # Saved, the next retention run deletes exactly what the preview said.
    alice_api.patch(f"/api/backups/schedules/{server.pk}", {"keep_daily": 7}, format="json")
    server.refresh_from_db()
    deleted = retention_apply(server=server, disk_percent=10)
    assert sorted(r.pk for r in deleted) == sorted(d["id"] for d in data["would_delete"])


@pytest.mark.django_db
def test_the_preview_is_owner_only_and_refuses_unknown_fields(alice_api, bob_api, server, quiet_disk):
    url = f"/api/backups/schedules/{server.pk}/retention-preview"
    response = bob_api.post(url, {"keep_last": 1}, format="json")
    assert response.status_code == 404 and response.json()["success"] is False
    response = alice_api.post(url, {"keep_yearly": 1}, format="json")
    assert response.status_code == 400 and "keep_yearly" in response.json()["details"]
    assert alice_api.post(url, [1], format="json").status_code == 400
    assert alice_api.post("/api/backups/schedules/999999/retention-preview", {}, format="json").status_code == 404


@pytest.mark.django_db
def test_a_server_without_a_schedule_previews_from_the_thirty_day_default(alice_api, alice, make_server, quiet_disk):
    bare = make_server(alice, "bare", world=False)
    old = _stored(bare, timezone.now() - dt.timedelta(days=20))
    newest = _stored(bare, timezone.now() - dt.timedelta(days=1))
    url = f"/api/backups/schedules/{bare.pk}/retention-preview"
    assert alice_api.post(url, {}, format="json").json()["data"]["would_delete"] == []
    data = alice_api.post(url, {"retention_days": 7}, format="json").json()["data"]
    assert [d["id"] for d in data["would_delete"]] == [old.pk] and data["kept"] == 1
    assert BackupRecord.objects.get(pk=newest.pk).status == "succeeded"
