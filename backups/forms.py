"""Web forms for schedules. They only validate what a person typed; the
services (backup_schedule_create/update) do the writing, as for the API."""

import re
from datetime import time

from django import forms

from backups import scheduling
from backups.models import BackupSchedule

# The same rule as the API: "2:5", "24:00" and "02:00:00" are refused, so a
# page and a curl call can never disagree about what a time is.
HH_MM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
HH_MM_MESSAGE = 'Enter the time as HH:MM (24-hour, two digits each), e.g. "02:00".'


class ScheduleTimeField(forms.CharField):
    widget = forms.TextInput(attrs={"inputmode": "numeric", "pattern": "[0-2][0-9]:[0-5][0-9]",
                                    "placeholder": "02:00", "maxlength": "5", "autocomplete": "off"})

    def prepare_value(self, value):
        return value.strftime("%H:%M") if isinstance(value, time) else value

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        match = HH_MM.match(value)
        if not match:
            raise forms.ValidationError(HH_MM_MESSAGE, code="format")
        return time(int(match.group(1)), int(match.group(2)))


def drop_unused_schedule_fields(data: dict) -> dict:
    """A form posts every field: what the chosen type does not use is
    dropped (not refused) — the interval of a daily schedule, the
    expression of an hourly one, the time of a cron one."""
    kind = data.get("schedule_type")
    if kind != BackupSchedule.ScheduleType.HOURLY:
        data["interval_hours"] = None
    if kind != BackupSchedule.ScheduleType.CRON:
        data["cron_expression"] = ""
    else:
        data["schedule_time"] = None
    return data


def add_schedule_problems(form, data: dict) -> None:
    """The services' rule book (scheduling.schedule_problems) on a form's fields."""
    if form.errors.get("schedule_type"):
        return
    probe = BackupSchedule(**{f: data.get(f) for f in ("schedule_type", "schedule_time", "interval_hours")},
                           cron_expression=data.get("cron_expression") or "")
    for field, problems in scheduling.schedule_problems(probe).items():
        if field in form.fields and field not in form.errors:
            for problem in problems:
                form.add_error(field, problem)


class ScheduleModelFormMixin:
    """For the admin's schedule ModelForms: the time is optional (cron does
    not use it) and what the chosen type does not use is dropped; the model's
    clean() (scheduling.schedule_problems) then says what is missing."""

    def clean(self):
        data = super().clean()
        if data.get("schedule_type"):
            drop_unused_schedule_fields(data)
        return data


class RetentionCountField(forms.IntegerField):
    """A count/GFS retention rule (services/retention.py): empty = off, else 1–1000."""

    def __init__(self, *, unit: str, **kwargs):
        self.unit = unit
        message = "Enter a whole number from 1 to 1000, or leave it empty to turn this rule off."
        kwargs.setdefault("help_text", "")
        super().__init__(required=False, min_value=1, max_value=1000,
                         error_messages={"min_value": message, "max_value": message, "invalid": message},
                         widget=forms.NumberInput(attrs={"placeholder": "off", "min": "1", "max": "1000"}),
                         **kwargs)
        self.help_text = " · ".join(filter(None, [unit, self.help_text, "empty: off"]))


class ScheduleForm(forms.Form):
    """The seed's "Creating Schedules → Via Web Interface" fields, plus the
    hourly interval and the cron expression (each used by its own type only)."""

    SCHEDULE_FIELDS = ("schedule_type", "schedule_time", "interval_hours", "cron_expression")

    schedule_type = forms.ChoiceField(choices=BackupSchedule.ScheduleType.choices, initial="daily")
    schedule_time = ScheduleTimeField(label="Backup time", initial="02:00", required=False,
                                      help_text="Hourly: the first run; cron: not used")
    interval_hours = forms.TypedChoiceField(
        label="Every", required=False, coerce=int, empty_value=None,
        choices=[("", "—")] + [(n, f"{n} hour{'s' if n > 1 else ''}") for n in scheduling.HOURLY_INTERVALS],
        help_text="Hourly only",
    )
    cron_expression = forms.CharField(
        label="Cron expression", required=False, max_length=255, strip=True,
        widget=forms.TextInput(attrs={"placeholder": "15 3 * * 1,5", "autocomplete": "off", "spellcheck": "false"}),
        help_text="Cron only: minute hour day-of-month month day-of-week",
    )
    retention_days = forms.IntegerField(
        label="Retention days", min_value=1, max_value=365, initial=30,
        error_messages={"min_value": "Retention must be between 1 and 365 days.",
                        "max_value": "Retention must be between 1 and 365 days."},
    )
    keep_last = RetentionCountField(label="Keep the newest", unit="backups", help_text="whatever their age")
    keep_hourly = RetentionCountField(label="Keep one per hour for", unit="hours")
    keep_daily = RetentionCountField(label="Keep one per day for", unit="days")
    keep_weekly = RetentionCountField(label="Keep one per week for", unit="weeks")
    keep_monthly = RetentionCountField(label="Keep one per month for", unit="months")
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)
    skip_unchanged = forms.BooleanField(
        label="Skip when nothing changed", required=False,
        help_text="No backup (a “skipped” line in the history) when no player is online and no file changed "
                  "since the last successful backup")

    RETENTION_FIELDS = ("retention_days", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")

    @classmethod
    def for_schedule(cls, schedule: BackupSchedule | None, **kwargs):
        if schedule is not None:
            kwargs.setdefault("initial", {
                "schedule_type": schedule.schedule_type, "schedule_time": schedule.schedule_time,
                "interval_hours": schedule.interval_hours, "cron_expression": schedule.cron_expression,
                "retention_days": schedule.retention_days, "enabled": schedule.enabled,
                "skip_unchanged": schedule.skip_unchanged,
                **{name: getattr(schedule, name) for name in cls.RETENTION_FIELDS[1:]},
            })
        return cls(**kwargs)

    def retention_data(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in self.RETENTION_FIELDS}

    def clean(self):
        data = super().clean()
        if self.fields["schedule_type"].required or data.get("schedule_type"):
            drop_unused_schedule_fields(data)
            add_schedule_problems(self, data)
        return data

    def schedule_data(self) -> dict:
        return {field: self.cleaned_data[field] for field in (*self.SCHEDULE_FIELDS, *self.RETENTION_FIELDS,
                                                               "enabled", "skip_unchanged")}


class AutomatedBackupsForm(ScheduleForm):
    """The seed's Quick Start: "Enable Automated Backups" while creating a
    server. The schedule fields matter only when the box is ticked."""

    enable_automated_backups = forms.BooleanField(
        label="Enable Automated Backups", required=False, initial=True,
        widget=forms.CheckboxInput(attrs={"data-toggles": "automated-backup-fields"}),
    )
    field_order = ["enable_automated_backups", "schedule_type", "schedule_time", "interval_hours",
                   "cron_expression", "retention_days"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["enabled"]  # a schedule created here starts enabled
        if self.is_bound and not self.data.get(self.add_prefix("enable_automated_backups")):
            for name in ("schedule_type", "schedule_time", "retention_days"):
                self.fields[name].required = False

    def clean(self):
        data = super().clean()
        if not data.get("enable_automated_backups"):
            # Nothing to validate: the schedule will not be created.
            self.errors.clear()
        return data

    @property
    def wants_schedule(self) -> bool:
        return bool(self.cleaned_data.get("enable_automated_backups"))

    def schedule_data(self) -> dict:
        return {**{f: self.cleaned_data[f] for f in (*self.SCHEDULE_FIELDS, "retention_days")}, "enabled": True}
