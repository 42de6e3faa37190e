from django.db import migrations

from apps.common.dbguards import append_only


class Migration(migrations.Migration):
    dependencies = [("common", "0004_append_only_function"), ("refunds", "0004_refund_send_claim")]

    operations = [
        append_only("refunds_refundevent"),
    ]
