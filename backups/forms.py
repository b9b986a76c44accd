"""Web forms for schedules. They only validate what a person typed; the
services (backup_schedule_create/update) do the writing, as for the API."""

import re
from datetime import time

from django import forms

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


class ScheduleForm(forms.Form):
    """The seed's "Creating Schedules → Via Web Interface" fields."""

    schedule_type = forms.ChoiceField(choices=BackupSchedule.ScheduleType.choices, initial="daily")
    schedule_time = ScheduleTimeField(label="Backup time", initial="02:00")
    retention_days = forms.IntegerField(
        label="Retention days", min_value=1, max_value=365, initial=30,
        error_messages={"min_value": "Retention must be between 1 and 365 days.",
                        "max_value": "Retention must be between 1 and 365 days."},
    )
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)

    @classmethod
    def for_schedule(cls, schedule: BackupSchedule | None, **kwargs):
        if schedule is not None:
            kwargs.setdefault("initial", {
                "schedule_type": schedule.schedule_type, "schedule_time": schedule.schedule_time,
                "retention_days": schedule.retention_days, "enabled": schedule.enabled,
            })
        return cls(**kwargs)

    def schedule_data(self) -> dict:
        return {field: self.cleaned_data[field] for field in ("schedule_type", "schedule_time",
                                                              "retention_days", "enabled")}


class AutomatedBackupsForm(ScheduleForm):
    """The seed's Quick Start: "Enable Automated Backups" while creating a
    server. The schedule fields matter only when the box is ticked."""

    enable_automated_backups = forms.BooleanField(
        label="Enable Automated Backups", required=False, initial=True,
        widget=forms.CheckboxInput(attrs={"data-toggles": "automated-backup-fields"}),
    )
    field_order = ["enable_automated_backups", "schedule_type", "schedule_time", "retention_days"]

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
        return {**{f: self.cleaned_data[f] for f in ("schedule_type", "schedule_time", "retention_days")},
                "enabled": True}
