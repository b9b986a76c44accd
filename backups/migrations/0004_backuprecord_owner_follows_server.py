"""Issue #11: a backup is owned by its server's owner (the copy in `owner`
only decides once the server is deleted), deleting a user never deletes
another user's backups, and kept backups remember their server's folder.

Old kept backups do not know the folder they came from: `server_directory`
stays empty for them (nothing is guessed). Attached backups whose copy of
the owner went stale through an earlier move get the server's owner."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def owner_copy_follows_server(apps, schema_editor):
    BackupRecord = apps.get_model("backups", "BackupRecord")
    Server = apps.get_model("servers", "Server")
    owner_of_server = Server.objects.filter(pk=models.OuterRef("server_id")).values("owner_id")[:1]
    (BackupRecord.objects.filter(server__isnull=False).exclude(owner_id=models.F("server__owner_id"))
     .update(owner_id=models.Subquery(owner_of_server)))


class Migration(migrations.Migration):

    dependencies = [
        ('backups', '0003_backuprecord_saves_paused'),
        ('servers', '0002_server_directory_unique'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='backuprecord',
            name='server_directory',
            field=models.CharField(blank=True, default='', max_length=500),
        ),
        migrations.AlterField(
            model_name='backuprecord',
            name='owner',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='backups', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(owner_copy_follows_server, migrations.RunPython.noop),
    ]
