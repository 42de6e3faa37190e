"""Database-level guards that hold whoever writes: a bug, a shell, a future service (RELIABILITY G13).

Audit rows (the audit log, timeline events, channel calls, incident steps, case notes, ledger entries)
are append-only. The services never update or delete them; on PostgreSQL a django-pgtrigger Protect
trigger, declared on the model (`Meta.triggers`) and installed by its migration, makes the database
refuse it too, for the application's own role. SQLite (local demos) gets no trigger and keeps the
service-level rule only. TRUNCATE, which the test runner uses between tests, is a statement-level
operation these row triggers do not see.
"""

from __future__ import annotations

import pgtrigger
from django.db import migrations

# What the database answers (pgtrigger's Protect wording), for callers that tell this refusal apart.
REFUSED = "Cannot update or delete rows"


def append_only(name: str) -> pgtrigger.Protect:
    """The trigger that refuses UPDATE and DELETE on a model's rows (put it in `Meta.triggers`)."""
    return pgtrigger.Protect(name=f"{name}_append_only", operation=pgtrigger.Update | pgtrigger.Delete)


def drop_legacy_guard(sql: str) -> migrations.RunPython:
    """Remove a hand-written trigger that an earlier migration installed (PostgreSQL only; not reversible
    into the old form: the pgtrigger trigger installed next to it is the guard)."""

    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return migrations.RunPython(run, migrations.RunPython.noop)
