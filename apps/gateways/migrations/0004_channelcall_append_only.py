from django.db import migrations

from apps.common.dbguards import append_only


class Migration(migrations.Migration):
    dependencies = [("common", "0005_append_only_function"), ("gateways", "0003_channel_health")]

    operations = [
        append_only("gateways_channelcall"),
    ]
