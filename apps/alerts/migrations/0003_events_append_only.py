from django.db import migrations

from apps.common.dbguards import append_only


class Migration(migrations.Migration):
    dependencies = [("common", "0005_append_only_function"), ("alerts", "0002_periodic_runs_move_to_common")]

    operations = [
        append_only("alerts_alertevent"),
    ]
