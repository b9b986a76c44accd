"""Retention (SPEC §5.7, issue #12): which stored backups are kept, and by
which rule; the others are deleted (file removed, record kept as history).

A regular backup is kept when any of these keeps it (as restic's `forget`):

- ``days``: it is younger than `retention_days` (every backup with a file,
  a failed-verification one too: only this rule keeps those);
- ``last``: it is one of the newest `keep_last` successful backups;
- ``hourly`` / ``daily`` / ``weekly`` / ``monthly``: it is the newest
  successful backup of its hour / day / ISO week / calendar month, and that
  bucket is one of the newest `keep_<period>` buckets that hold a successful
  backup (buckets with no backup do not count). Buckets are wall-clock
  periods in the site zone (MCSITE_TIME_ZONE): a day is midnight to
  midnight there, 23 or 25 hours long across a DST change, and the hour
  that happens twice when clocks go back is one bucket;
- ``locked``: the user locked (pinned) it;
- ``newest``: it is the newest successful backup (the seed's "always keep
  one");
- ``in_use``: a restore or rollback is reading it right now.

Locked and safety backups are outside the count rules: they neither fill a
`keep_last` place nor a period's bucket. A restore's safety backup (its
rollback point) is kept for BackupSettings.safety_backup_days (``safety``),
or for good when locked.

Emergency: when the backup disk is ≥ the emergency threshold (90 %), only the
3 newest regular backups and the newest safety backup of each server stay,
whatever the rules say — except locked ones, the newest successful one and
those a restore is reading.

`retention_plan` decides without touching anything; `retention_apply`
deletes what it decides; `retention_preview` says what a policy would
delete now, before it is saved."""

import logging
import shutil
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups import events, scheduling, storage
from backups.models import ACTIVE_STATUSES, BackupRecord, BackupSettings, RestoreRequest
from backups.services import files, offsite, snapshots
from servers import nodes
from servers.models import Node

logger = logging.getLogger("mcsite.backups")

DEFAULT_RETENTION_DAYS = 30
EMERGENCY_KEEP = 3
SAFETY_EMERGENCY_KEEP = 1
COUNT_MAX = 1000
_HAS_FILE = {"status__in": [BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED]}

# The count rules, in the order they are told: (field, rule name, bucket of a local time).
PERIODS = (
    ("keep_hourly", "hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("keep_daily", "daily", lambda t: (t.year, t.month, t.day)),
    ("keep_weekly", "weekly", lambda t: tuple(t.isocalendar())[:2]),
    ("keep_monthly", "monthly", lambda t: (t.year, t.month)),
)
# Every reason a backup may be kept, in the order the API's `kept_by` lists them.
KEEP_RULES = ("days", "last", "hourly", "daily", "weekly", "monthly", "locked", "newest", "in_use", "safety")


@dataclass(frozen=True)
class RetentionPolicy:
    """A schedule's retention fields. None: that count rule is off."""

    retention_days: int = DEFAULT_RETENTION_DAYS
    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None

    FIELDS = ("retention_days", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")

    @classmethod
    def of(cls, schedule) -> "RetentionPolicy":
        """The policy a schedule holds; a server without one keeps 30 days."""
        if schedule is None:
            return cls()
        return cls(**{name: getattr(schedule, name) for name in cls.FIELDS})

    def changed(self, **values) -> "RetentionPolicy":
        """This policy with the given fields replaced (others unchanged)."""
        return replace(self, **{k: v for k, v in values.items() if k in self.FIELDS})

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str:
        """In words, e.g. "Keeps 2 days, and one a day for 30 days"."""
        parts = [f"Keeps {_count(self.retention_days, 'day')}"]
        if self.keep_last:
            parts.append(f"the newest {self.keep_last}")
        for name, unit, article in (("keep_hourly", "hour", "an"), ("keep_daily", "day", "a"),
                                    ("keep_weekly", "week", "a"), ("keep_monthly", "month", "a")):
            n = getattr(self, name)
            if n:
                parts.append(f"one {article} {unit} for {_count(n, unit)}")
        if len(parts) == 1:
            return parts[0]
        return ", ".join(parts[:-1]) + ", and " + parts[-1]


def policy_problems(obj) -> dict:
    """{field: [message]} for retention fields of `obj` (a schedule or a
    policy) that are not whole numbers in range: retention_days 1–365, the
    count rules empty or 1–1000."""
    problems = {}
    for name in RetentionPolicy.FIELDS:
        value = getattr(obj, name, None)
        required = name == "retention_days"
        low, high = (1, 365) if required else (1, COUNT_MAX)
        if value is None and not required:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            what = "Retention must be between 1 and 365 days." if required else \
                f"Must be a whole number from 1 to {COUNT_MAX}, or empty (null) to turn the rule off."
            problems[name] = [what]
    return problems


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"


def describe_retention(schedule) -> str:
    return RetentionPolicy.of(schedule).describe()


@dataclass
class Decision:
    """What retention does with one backup: kept (by `kept_by`, never empty)
    or deleted (`reason`: "age" — older than the days and no rule keeps it —
    or "emergency" — a rule keeps it but the disk is nearly full)."""

    record: BackupRecord
    kept_by: list = field(default_factory=list)
    reason: str | None = None

    @property
    def deleted(self) -> bool:
        return self.reason is not None


@dataclass
class RetentionPlan:
    decisions: list

    @property
    def deleted(self) -> list:
        return [d for d in self.decisions if d.deleted]

    @property
    def kept(self) -> list:
        return [d for d in self.decisions if not d.deleted]

    def kept_by(self) -> dict:
        """{rule: how many backups it keeps} for every rule; a backup kept by
        two rules counts for each."""
        counts = dict.fromkeys(KEEP_RULES, 0)
        for decision in self.kept:
            for rule in decision.kept_by:
                counts[rule] += 1
        return counts


def _newest_first(records) -> list:
    return sorted(records, key=lambda r: (r.created_at, r.pk or 0), reverse=True)


def count_rule_keeps(candidates: list, policy: RetentionPolicy, zone) -> dict:
    """{record pk: [rules]} of the count rules over `candidates` (successful,
    unlocked, regular backups). restic's semantics: `keep_last` keeps the
    newest N; each period rule walks newest first and keeps the first backup
    it meets in each new bucket until it has kept N."""
    keeps: dict = {}
    ordered = _newest_first(candidates)
    for record in ordered[:policy.keep_last or 0]:
        keeps.setdefault(record.pk, []).append("last")
    for name, rule, bucket_of in PERIODS:
        wanted = getattr(policy, name) or 0
        last_bucket, kept = None, 0
        for record in ordered:
            if kept >= wanted:
                break
            bucket = bucket_of(timezone.localtime(record.created_at, zone))
            if bucket != last_bucket:
                keeps.setdefault(record.pk, []).append(rule)
                last_bucket, kept = bucket, kept + 1
    return keeps


def retention_plan(records, *, policy: RetentionPolicy, now, emergency: bool = False, safety_days: int = 7,
                   in_use=frozenset(), zone=None) -> RetentionPlan:
    """Decides, without side effects, what happens to each of a server's
    stored backups (`records`: those with a file, succeeded or failed)."""
    zone = zone or scheduling.site_zone()
    ordered = _newest_first(records)
    safety = [r for r in ordered if r.trigger == BackupRecord.Trigger.SAFETY]
    regular = [r for r in ordered if r.trigger != BackupRecord.Trigger.SAFETY]
    ok = BackupRecord.Status.SUCCEEDED
    newest_ok = next((r for r in regular if r.status == ok), None)
    candidates = [r for r in regular if r.status == ok and not r.locked]
    count_keeps = count_rule_keeps(candidates, policy, zone)
    cutoff = now - timedelta(days=policy.retention_days)
    safety_cutoff = now - timedelta(days=safety_days)

    decisions = []
    for group, quota in ((regular, EMERGENCY_KEEP), (safety, SAFETY_EMERGENCY_KEEP)):
        for position, record in enumerate(group):
            kept_by = []
            if record.trigger == BackupRecord.Trigger.SAFETY:
                if record.created_at >= safety_cutoff:
                    kept_by.append("safety")
            else:
                if record.created_at >= cutoff:
                    kept_by.append("days")
                kept_by += count_keeps.get(record.pk, [])
            # What even the emergency rule never deletes.
            protected = []
            if record.locked:
                protected.append("locked")
            if record is newest_ok:
                protected.append("newest")
            if record.pk in in_use:
                protected.append("in_use")
            if protected:
                decisions.append(Decision(record, kept_by + protected))
            elif emergency and position >= quota:
                decisions.append(Decision(record, [], "emergency" if kept_by else "age"))
            elif kept_by:
                decisions.append(Decision(record, kept_by))
            else:
                decisions.append(Decision(record, [], "age"))
    return RetentionPlan(_newest_first_decisions(decisions))


def _newest_first_decisions(decisions: list) -> list:
    return sorted(decisions, key=lambda d: (d.record.created_at, d.record.pk or 0), reverse=True)


def disk_usage_percent(node: str | None = None) -> float:
    """As df reports it: blocks reserved for root are neither used nor
    available to us, so the disk is full at used / (used + free) = 100 %.
    ``node``: another game host's backup disk, as it last reported it
    (free and total only: reserved blocks count as used), 0 when unknown."""
    if node is not None and not nodes.is_local(node):
        row = Node.objects.filter(name=node).first()
        if row is None or not row.backup_root_total or row.backup_root_free is None:
            return 0.0
        return 100.0 * (row.backup_root_total - row.backup_root_free) / row.backup_root_total
    usage = shutil.disk_usage(storage.backup_root())
    usable = usage.used + usage.free
    return 100.0 * usage.used / usable if usable else 0.0


def _in_use(server) -> set:
    in_use = set()
    for backup_id, safety_id in RestoreRequest.objects.filter(
            server=server, status__in=ACTIVE_STATUSES).values_list("backup_id", "safety_backup_id"):
        in_use.update({backup_id, safety_id})
    in_use.discard(None)
    return in_use


def _plan_for(server, records, *, policy, disk_percent, now) -> RetentionPlan:
    config = BackupSettings.load()
    return retention_plan(records, policy=policy, now=now, emergency=disk_percent >= config.disk_emergency_percent,
                          safety_days=config.safety_backup_days, in_use=_in_use(server))


def retention_apply(*, server, disk_percent: float | None = None, now=None) -> list[BackupRecord]:
    """Applies the server's retention; returns the backups it deleted.
    `disk_percent` is the backup disk's usage (measured when not given)."""
    now = now or timezone.now()
    policy = RetentionPolicy.of(getattr(server, "backup_schedule", None))
    disk_percent = disk_usage_percent() if disk_percent is None else disk_percent
    with transaction.atomic():
        records = list(BackupRecord.objects.select_for_update().filter(server=server, **_HAS_FILE))
        plan = _plan_for(server, records, policy=policy, disk_percent=disk_percent, now=now)
        deleted = []
        for decision in plan.deleted:
            if decision.reason == "emergency" and offsite.drop_local_file(decision.record):
                continue  # only its local file went: its verified off-site copy keeps it (issue #13)
            _delete(decision.record, reason=decision.reason, policy=policy, disk_percent=disk_percent)
            deleted.append(decision.record)
    if any(record.snapshot_id for record in deleted):
        _prune_after_commit(server)  # the forgotten snapshots' blobs go (issue #14)
    return deleted


def _prune_after_commit(server) -> None:
    def prune():
        row = snapshots.repository_of(server)
        if row is None or not snapshots.where_readable(row):
            return  # pruned by its node's own sweep
        try:
            snapshots.repository_prune(row)
        except Exception as exc:  # noqa: BLE001 — a failed prune loses nothing; the next one catches up
            logger.error("repository_prune_failed server_id=%s error=%s", server.pk, exc)

    transaction.on_commit(prune)


def retention_preview(*, server, policy: RetentionPolicy | None = None, disk_percent: float | None = None,
                      now=None) -> RetentionPlan:
    """What `retention_apply` would do now if the server's retention were
    `policy` (its current one when None). Changes nothing."""
    now = now or timezone.now()
    if policy is None:
        policy = RetentionPolicy.of(getattr(server, "backup_schedule", None))
    disk_percent = disk_usage_percent(server.node) if disk_percent is None else disk_percent
    records = list(BackupRecord.objects.filter(server=server, **_HAS_FILE))
    return _plan_for(server, records, policy=policy, disk_percent=disk_percent, now=now)


def retention_change_preview(*, server, policy: RetentionPolicy, disk_percent: float | None = None,
                             now=None) -> tuple[RetentionPlan, list]:
    """The plan under `policy`, and the backups it would delete that the
    server's current retention keeps: what saving the change costs."""
    now = now or timezone.now()
    disk_percent = disk_usage_percent(server.node) if disk_percent is None else disk_percent
    new = retention_preview(server=server, policy=policy, disk_percent=disk_percent, now=now)
    current = retention_preview(server=server, disk_percent=disk_percent, now=now)
    already = {d.record.pk for d in current.deleted}
    return new, [d for d in new.deleted if d.record.pk not in already]


def retention_sweep(*, disk_percent: float | None = None) -> int:
    """Every server of this node, e.g. hourly from beat: catches servers
    whose last backup was long ago and the emergency rule across the whole
    disk. Each node sweeps its own disk (issue #15): beat's sweep sends it
    to the others (backups.tasks.sweep_retention)."""
    from servers.models import Server

    disk_percent = disk_usage_percent() if disk_percent is None else disk_percent
    deleted = 0
    for server in Server.objects.filter(node=settings.MCSITE_NODE).select_related("backup_schedule"):
        deleted += len(retention_apply(server=server, disk_percent=disk_percent))
    return deleted


def _delete(record: BackupRecord, *, reason: str, policy: RetentionPolicy, disk_percent: float) -> None:
    files.remove_on_its_node(record)
    offsite.copies_schedule_delete(record, by_age=True)  # a target may keep it longer (extra_retention_days)
    record.status = BackupRecord.Status.DELETED
    record.deleted_at = timezone.now()
    record.save(update_fields=["status", "deleted_at"])
    events.log_event(
        "retention_deleted", server=record.server, backup=record, reason=reason,
        retention_days=policy.retention_days, disk_percent=round(disk_percent, 1),
        **{name: getattr(policy, name) for name in RetentionPolicy.FIELDS[1:]},  # the count rules that are on
    )
