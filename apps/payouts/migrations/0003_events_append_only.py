from django.db import migrations

from apps.common.dbguards import append_only


class Migration(migrations.Migration):
    dependencies = [("common", "0005_append_only_function"), ("payouts", "0002_disbursement_hold_kind")]

    operations = [
        append_only("payouts_disbursementevent"),
        append_only("payouts_incidentstep"),
    ]
