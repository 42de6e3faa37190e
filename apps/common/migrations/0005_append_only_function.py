from django.db import migrations

from apps.common.dbguards import append_only_function


class Migration(migrations.Migration):
    dependencies = [("common", "0004_periodicrun")]

    operations = [append_only_function()]
