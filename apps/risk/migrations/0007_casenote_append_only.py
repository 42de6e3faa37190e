from django.db import migrations

from apps.common.dbguards import append_only


class Migration(migrations.Migration):
    dependencies = [("common", "0005_append_only_function"), ("risk", "0006_case_decision_withdrawn")]

    operations = [
        append_only("risk_casenote"),
    ]
