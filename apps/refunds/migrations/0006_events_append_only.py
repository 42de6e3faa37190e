from django.db import migrations

from apps.common.dbguards import append_only


class Migration(migrations.Migration):
    dependencies = [("common", "0005_append_only_function"), ("refunds", "0005_alter_refund_status")]

    operations = [
        append_only("refunds_refundevent"),
    ]
