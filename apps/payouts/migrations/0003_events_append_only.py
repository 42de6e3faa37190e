"""Superseded: kept so the migration graph stays the same."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("common", "0005_append_only_function"), ("payouts", "0002_disbursement_hold_kind")]

    # Installed a hand-written append-only trigger; the guard is now a django-pgtrigger trigger declared
    # on the model (a later migration drops the old one on databases that have it).
    operations = []
