# Periodic job windows move to the shared period claim (apps.common.PeriodicRun). The recent windows
# are copied first, so a job that already ran in the current window does not run again on deploy.

import datetime as dt

from django.db import migrations


def copy_recent_windows(apps, schema_editor):
    AlertJobRun = apps.get_model("alerts", "AlertJobRun")
    PeriodicRun = apps.get_model("common", "PeriodicRun")
    since = dt.datetime.now(tz=dt.UTC) - dt.timedelta(days=1)
    PeriodicRun.objects.bulk_create(
        (
            PeriodicRun(job=f"alerts.{run.job}", window_start=run.window_start, result=run.result)
            for run in AlertJobRun.objects.filter(window_start__gte=since).iterator()
        ),
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_initial"),
        ("common", "0004_periodicrun"),
    ]

    operations = [
        migrations.RunPython(copy_recent_windows, migrations.RunPython.noop),
        migrations.DeleteModel(name="AlertJobRun"),
    ]
