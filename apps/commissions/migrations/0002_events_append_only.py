from django.db import migrations

from apps.common.dbguards import append_only


class Migration(migrations.Migration):
    dependencies = [("common", "0005_append_only_function"), ("commissions", "0001_initial")]

    operations = [
        append_only("commissions_commissionevent"),
    ]
