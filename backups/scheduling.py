"""Schedule ↔ django-celery-beat glue, in one place (STYLE lesson 3).

Each BackupSchedule owns one PeriodicTask named `backup-schedule:<pk>` with
kwargs {"schedule_id": pk} and a CrontabSchedule in MCSITE_TIME_ZONE that is
got-or-created (never edited in place, other tasks may share it). Callers run
these inside the transaction that saves the schedule. Saving or deleting a
PeriodicTask through the ORM bumps django-celery-beat's change marker, so a
running beat picks the change up without a restart.

Every schedule type is a crontab (`crontab_fields`):

    daily    M H * * *            weekly   M H * * 0 (Sunday)
    monthly  M H 1 * *            hourly   M H1,H2,… * * *  (H + k·N, k = 0…24/N-1)
    cron     the user's five fields, validated with Celery's own parser

`next_runs` walks the parsed sets of the very crontab object beat is given
(`beat_crontab`), day by day, in wall-clock time in the site zone; see
`iter_runs` for the DST rules and `period` for what the dead-man alert uses.
"""

import json
import re
from datetime import date, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from celery.schedules import ParseException, crontab
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

TASK_NAME = "backups.tasks.run_scheduled_backup"
TASK_PREFIX = "backup-schedule:"
SUNDAY_CRON = "0"  # cron and Celery count Sunday as 0
PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 31}
HOURLY_INTERVALS = (1, 2, 3, 4, 6, 8, 12)  # divisors of 24: runs stay evenly spaced, every day alike
NEXT_RUNS = 5
UTC = ZoneInfo("UTC")

# The five cron fields in order, as CrontabSchedule names them, with the
# label a user reads and the length CrontabSchedule can store.
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
CRON_LABELS = {"minute": "minute", "hour": "hour", "day_of_month": "day-of-month",
               "month_of_year": "month", "day_of_week": "day-of-week"}
CRON_NAMES = {
    "month_of_year": {m: i for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)},
    "day_of_week": {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}
CRON_BOUNDS = {"minute": (0, 59), "hour": (0, 23), "day_of_month": (1, 31), "month_of_year": (1, 12),
               "day_of_week": (0, 6)}
CRON_EXAMPLE = '"15 3 * * 1,5" (03:15 on Mondays and Fridays)'
# Four years and a day cover every calendar cycle a five-field crontab can
# have (months, days of the month, leap years, weekdays within a year).
HORIZON_DAYS = 4 * 366 + 1


def site_zone() -> ZoneInfo:
    return ZoneInfo(settings.MCSITE_TIME_ZONE)


def periodic_task_name(schedule_pk: int) -> str:
    return f"{TASK_PREFIX}{schedule_pk}"


# --- cron expressions ------------------------------------------------------------

class CronError(ValueError):
    """A cron expression beat would refuse or misread; the message says why."""


def split_cron(expression: str) -> dict[str, str]:
    """The five fields of a cron expression (whitespace-separated)."""
    parts = (expression or "").split()
    return dict(zip(CRON_FIELDS, parts, strict=False)) if len(parts) == 5 else {}


def _number(field: str, token: str) -> int | None:
    token = token.strip().lower()
    if token.isdigit():
        return int(token)
    return CRON_NAMES.get(field, {}).get(token)


def parse_cron(expression) -> dict[str, str]:
    """Validates a five-field cron expression and returns its fields.

    Celery's crontab parser decides what each field means (so beat agrees
    with what was accepted); on top of it, what standard cron would refuse
    and Celery reads differently is refused here: names outside the month
    and day-of-week fields, backwards ranges, 7 for Sunday, and an expression
    that restricts both the day of the month and the day of the week (Celery
    needs both to match, classic cron either)."""
    if not isinstance(expression, str):
        raise CronError("Must be a string.")
    text = " ".join(expression.split())
    if not text:
        raise CronError(f"Enter a cron expression: minute hour day-of-month month day-of-week, e.g. {CRON_EXAMPLE}.")
    if text.startswith("@"):
        raise CronError(f"Shortcuts such as {text.split()[0]} are not supported: write the five fields, "
                        'e.g. "0 0 * * *" for @daily.')
    fields = split_cron(text)
    if not fields:
        raise CronError(f"A cron expression has 5 fields (minute hour day-of-month month day-of-week), "
                        f"not {len(text.split())}: e.g. {CRON_EXAMPLE}. Seconds and years are not supported.")
    parsed = {}
    for field, value in fields.items():
        label = CRON_LABELS[field]
        if not re.fullmatch(r"[0-9A-Za-z*/,\-]+", value):
            raise CronError(f"{label}: {value!r} is not valid; use numbers, *, ranges (1-5), lists (1,15) "
                            "and steps (*/15).")
        for part in value.split(","):
            base = part.split("/", 1)[0]
            for token in base.split("-"):
                if token and token != "*" and _number(field, token) is None:
                    allowed = {"month_of_year": " or month names jan–dec",
                               "day_of_week": " (0 = Sunday … 6 = Saturday) or day names sun–sat"}.get(field, "")
                    raise CronError(f"{label}: {token!r} is not supported; use numbers{allowed}.")
            if field == "day_of_week" and "7" in base.split("-"):
                raise CronError("day-of-week: Celery counts Sunday as 0 and does not accept 7; "
                                "write 0 or sun for Sunday.")
            if base.count("-") == 1:
                start, end = base.split("-")
                low, high = _number(field, start), _number(field, end)
                if low is not None and high is not None and low > high:
                    first, last = CRON_BOUNDS[field]
                    raise CronError(f"{label}: the range {base} goes backwards; write it as "
                                    f"{start}-{last},{first}-{end}.")
        try:
            parsed[field] = getattr(crontab(**{field: value}), field)
        except (ValueError, ParseException) as exc:
            raise CronError(f"{label}: {value!r} is not valid ({exc}).") from None
        limit = CrontabSchedule._meta.get_field(field).max_length
        if len(value) > limit:
            raise CronError(f"{label}: too long (at most {limit} characters); use ranges or steps.")
    if parsed["day_of_month"] != set(range(1, 32)) and parsed["day_of_week"] != set(range(7)):
        raise CronError(
            "Restrict the day of the month or the day of the week, not both: leave one of them as *. "
            "Classic cron runs on days that match either field, but Celery (which runs these schedules) "
            f'runs only on days that match both, so "{fields["minute"]} {fields["hour"]} '
            f'{fields["day_of_month"]} {fields["month_of_year"]} {fields["day_of_week"]}" would run far less '
            "often than it reads.")
    if not any(_day_matches(parsed, date.today() + timedelta(days=n)) for n in range(HORIZON_DAYS)):
        raise CronError("This expression never fires (no such day, e.g. 30 February).")
    return fields


# --- schedule → crontab ----------------------------------------------------------

def hourly_hours(anchor_hour: int, interval: int) -> list[int]:
    """The hours an hourly schedule runs at: the anchor plus multiples of N."""
    return sorted((anchor_hour + k * interval) % 24 for k in range(24 // interval))


def crontab_fields(schedule) -> dict[str, str]:
    """The five crontab fields (CrontabSchedule's names) of a schedule."""
    kind = schedule.schedule_type
    if kind == "cron":
        return split_cron(schedule.cron_expression)
    at = schedule.schedule_time
    hour = str(at.hour)
    if kind == "hourly":
        hour = ",".join(map(str, hourly_hours(at.hour, schedule.interval_hours)))
    return {
        "minute": str(at.minute), "hour": hour,
        "day_of_month": "1" if kind == "monthly" else "*",
        "month_of_year": "*",
        "day_of_week": SUNDAY_CRON if kind == "weekly" else "*",
    }


def crontab_for(schedule) -> CrontabSchedule:
    crontab_row, _ = CrontabSchedule.objects.get_or_create(**crontab_fields(schedule),
                                                           timezone=settings.MCSITE_TIME_ZONE)
    return crontab_row


def beat_crontab(schedule):
    """The schedule object beat runs for this schedule: what
    CrontabSchedule.schedule gives the DatabaseScheduler (a TzAwareCrontab in
    the site zone), built from an unsaved row."""
    return CrontabSchedule(**crontab_fields(schedule), timezone=site_zone()).schedule


def sync_periodic_task(schedule) -> PeriodicTask:
    """Create or bring the schedule's PeriodicTask in line with it."""
    assert transaction.get_connection().in_atomic_block, "call inside the schedule's transaction"
    task, _ = PeriodicTask.objects.update_or_create(
        name=periodic_task_name(schedule.pk),
        defaults={
            "task": TASK_NAME,
            "crontab": crontab_for(schedule),
            "interval": None,
            "kwargs": json.dumps({"schedule_id": schedule.pk}),
            "enabled": schedule.enabled,
            "queue": schedule.server.node,
            "one_off": False,
            "description": f"Backup of {schedule.server.name} ({describe(schedule)}, {settings.MCSITE_TIME_ZONE})"[:200],
        },
    )
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        type(schedule).objects.filter(pk=schedule.pk).update(periodic_task=task)
    return task


def delete_periodic_task(schedule) -> None:
    PeriodicTask.objects.filter(name=periodic_task_name(schedule.pk)).delete()
    PeriodicTasks.update_changed()


# --- when it runs ------------------------------------------------------------------

def _day_matches(sets, day: date) -> bool:
    """Celery's rule: month, day of the month AND day of the week all match."""
    get = sets.get if isinstance(sets, dict) else lambda name: getattr(sets, name)
    return (day.month in get("month_of_year") and day.day in get("day_of_month")
            and (day.weekday() + 1) % 7 in get("day_of_week"))  # Python: Monday 0; cron: Sunday 0


def _wall_times(cron) -> list[time]:
    return [time(h, m) for h in sorted(cron.hour) for m in sorted(cron.minute)]


def _normalise(day: date, at: time, zone: ZoneInfo) -> datetime:
    # Round-trip through UTC: a non-existent wall time (spring forward) moves
    # on by the gap, an ambiguous one (fall back) is its first occurrence.
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC).astimezone(zone)


def iter_runs(schedule, *, after: datetime, horizon_days: int = 10 * HORIZON_DAYS):
    """The schedule's runs after `after`, in order, as aware datetimes in the
    site zone, whether or not it is enabled.

    Wall-clock semantics, as beat's crontab in the site zone: each matching
    day, every hour × minute of the crontab, local time. A time that does not
    exist on a spring-forward day fires at the same wall time shifted by the
    gap (02:30 → 03:30; if 03:30 is also a run, it runs once); an ambiguous
    autumn time fires once, at its first occurrence."""
    cron = beat_crontab(schedule)
    zone = site_zone()
    after = after.astimezone(zone)
    times = _wall_times(cron)
    # A wall time this long before `after` cannot land after it (DST gaps are
    # at most two hours): skipped without the zone arithmetic.
    floor = after.replace(tzinfo=None) - timedelta(hours=3)
    pending: set[datetime] = set()
    # From the day before: a shifted time can cross midnight.
    day = after.date() - timedelta(days=1)
    for _ in range(horizon_days):
        if _day_matches(cron, day):
            pending.update(run for run in (_normalise(day, t, zone) for t in times
                                           if datetime.combine(day, t) > floor) if run > after)
        day += timedelta(days=1)
        # Later days only give runs at or after their own (normalised) midnight.
        boundary = _normalise(day, time(0), zone)
        ready = sorted(run for run in pending if run < boundary)
        pending.difference_update(ready)
        yield from ready


def next_runs(schedule, *, count: int = NEXT_RUNS, now: datetime | None = None) -> list[datetime]:
    """The next `count` runs (site zone), or [] when the schedule is disabled."""
    if not schedule.enabled:
        return []
    return list(islice(iter_runs(schedule, after=now or timezone.now()), count))


def next_run(schedule, *, now: datetime | None = None) -> datetime | None:
    """The next time the schedule fires, as an aware datetime in the site zone,
    or None when it is disabled (DST rules: `iter_runs`)."""
    runs = next_runs(schedule, count=1, now=now)
    return runs[0] if runs else None


def period(schedule) -> timedelta:
    """How long the schedule may go between two runs (the dead-man alert
    fires after twice this). daily 1 day, weekly 7, monthly 31, hourly N
    hours; cron: the longest gap between consecutive runs, in wall-clock
    time, over the next four years and a day — every calendar cycle a
    five-field crontab can have — computed from the crontab's parsed sets:
    the largest gap between two times of one day, or from the last run of a
    run day to the first run of the next run day."""
    kind = schedule.schedule_type
    if kind == "hourly":
        return timedelta(hours=schedule.interval_hours)
    if kind != "cron":
        return timedelta(days=PERIOD_DAYS[kind])
    cron = beat_crontab(schedule)
    times = [t.hour * 60 + t.minute for t in _wall_times(cron)]
    longest = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0)
    today = timezone.now().astimezone(site_zone()).date()
    previous = None
    for n in range(HORIZON_DAYS):
        day = today + timedelta(days=n)
        if _day_matches(cron, day):
            if previous is not None:
                longest = max(longest, (day - previous).days * 1440 + times[0] - times[-1])
            previous = day
    return timedelta(minutes=longest or HORIZON_DAYS * 1440)


# --- in words ------------------------------------------------------------------

def describe(schedule) -> str:
    """A short description in words (times are wall-clock, site zone)."""
    kind = schedule.schedule_type
    if kind == "cron":
        return describe_cron(schedule.cron_expression)
    at = f"{schedule.schedule_time:%H:%M}"
    if kind == "daily":
        return f"daily at {at}"
    if kind == "weekly":
        return f"every Sunday at {at}"
    if kind == "monthly":
        return f"on the 1st of every month at {at}"
    n = schedule.interval_hours
    if n == 1:
        return f"every hour at :{schedule.schedule_time:%M}"
    first = hourly_hours(schedule.schedule_time.hour, n)[0]
    return f"every {n} hours at :{schedule.schedule_time:%M} from {first:02d}:{schedule.schedule_time:%M}"


def describe_cron(expression: str) -> str:
    """cron-descriptor's words (django-celery-beat's own dependency), 24-hour."""
    from cron_descriptor import ExpressionDescriptor, Options

    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        text = ExpressionDescriptor(" ".join(expression.split()), options).get_description()
    except Exception:  # noqa: BLE001 — words are a nicety; the expression itself always works
        return f"cron {expression}"
    return text[:1].lower() + text[1:]


# --- consistency -----------------------------------------------------------------

def schedule_problems(schedule) -> dict[str, list[str]]:
    """What is wrong with a schedule's combination of fields, by field name
    (empty when it is fine). The single rule book for the API, the pages and
    the admin: each type takes its own fields and refuses the others'."""
    kind = schedule.schedule_type
    problems: dict[str, list[str]] = {}
    if kind not in ("daily", "weekly", "monthly", "hourly", "cron"):
        return {"schedule_type": [f'"{kind}" is not a valid choice.']}
    if kind != "cron" and schedule.schedule_time is None:
        problems["schedule_time"] = [f"This field is required for {kind} schedules."]
    if kind == "hourly":
        if schedule.interval_hours is None:
            problems["interval_hours"] = ["This field is required for hourly schedules: one of 1, 2, 3, 4, 6, 8, 12."]
        elif schedule.interval_hours not in HOURLY_INTERVALS:
            problems["interval_hours"] = [
                f"{schedule.interval_hours} is not allowed: use 1, 2, 3, 4, 6, 8 or 12 (divisors of 24, so runs "
                "stay evenly spaced every day)."]
    elif schedule.interval_hours is not None:
        problems["interval_hours"] = [f'Only hourly schedules take interval_hours (this one is "{kind}").']
    if kind == "cron":
        if not schedule.cron_expression:
            problems["cron_expression"] = [f"This field is required for cron schedules, e.g. {CRON_EXAMPLE}."]
        else:
            try:
                parse_cron(schedule.cron_expression)
            except CronError as exc:
                problems["cron_expression"] = [str(exc)]
    elif schedule.cron_expression:
        problems["cron_expression"] = [f'Only cron schedules take cron_expression (this one is "{kind}").']
    return problems


def periodic_task_differs(schedule) -> bool:
    """True when the schedule's PeriodicTask is missing or says something else."""
    task = PeriodicTask.objects.filter(name=periodic_task_name(schedule.pk)).select_related("crontab").first()
    if task is None or task.crontab is None or schedule.periodic_task_id != task.pk:
        return True
    cron = task.crontab
    wanted = {**crontab_fields(schedule), "timezone": settings.MCSITE_TIME_ZONE}
    actual = {**{field: getattr(cron, field) for field in CRON_FIELDS}, "timezone": str(cron.timezone)}
    return (
        wanted != actual
        or task.enabled != schedule.enabled
        or task.task != TASK_NAME
        or json.loads(task.kwargs or "{}") != {"schedule_id": schedule.pk}
        or (task.queue or "") != schedule.server.node
    )
