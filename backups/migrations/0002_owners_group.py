"""The "Owners" group: staff users in it manage their own servers, schedules,
backups and restores in the Django admin (scoped by OwnerScopedAdmin)."""

from django.db import migrations

OWNER_PERMISSIONS = {
    "servers": {"server": ["view", "add", "change", "delete"]},
    "backups": {
        "backupschedule": ["view", "add", "change", "delete"],
        "backuprecord": ["view", "change"],
        "restorerequest": ["view"],
    },
}


def create_owners_group(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_label in OWNER_PERMISSIONS:
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Owners")
    for app_label, models in OWNER_PERMISSIONS.items():
        for model, actions in models.items():
            for action in actions:
                permission = Permission.objects.get(
                    content_type__app_label=app_label, codename=f"{action}_{model}"
                )
                group.permissions.add(permission)


def remove_owners_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Owners").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0001_initial"),
        ("servers", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_owners_group, remove_owners_group)]
