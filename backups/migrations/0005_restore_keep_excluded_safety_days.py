import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    """A restore keeps what backups exclude (issue #12), and safety backups
    expire after a number of days instead of piling up locked."""

    dependencies = [
        ("backups", "0004_backuprecord_owner_follows_server"),
    ]

    operations = [
        migrations.AddField(
            model_name="restorerequest",
            name="keep_excluded",
            field=models.BooleanField(
                default=True, help_text="Keep what backups exclude (logs/, …) from the current folder"),
        ),
        migrations.AddField(
            model_name="backupsettings",
            name="safety_backup_days",
            field=models.PositiveSmallIntegerField(
                default=7,
                help_text="Days a restore's safety backup is kept (the rollback point) unless it is locked",
                validators=[django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(365)]),
        ),
        # Safety backups used to be locked for ever; from now on they expire
        # unless a user locks one on purpose. Unlock the old automatic locks.
        migrations.RunSQL(
            "UPDATE backups_backuprecord SET locked = false WHERE trigger = 'safety'",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
