"""Database-level guards that hold whoever writes: a bug, a shell, a future service (RELIABILITY G13).

Audit rows (timeline events, channel calls, incident steps, case notes) are append-only. The services
never update or delete them; on PostgreSQL a trigger makes the database refuse it too, for the
application's own role. SQLite (local demos) keeps the service-level rule only. TRUNCATE, which the
test runner uses between tests, is a statement-level operation these row triggers do not see.
"""

from __future__ import annotations

from django.db import migrations

FUNCTION = "rg_append_only"

CREATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% rows are an audit record: append-only, never changed or deleted', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
DROP_FUNCTION = f"DROP FUNCTION IF EXISTS {FUNCTION}();"


def _on_postgres(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


def append_only_function() -> migrations.RunPython:
    """The trigger function every append-only table uses (created once, in apps.common)."""
    return migrations.RunPython(_on_postgres(CREATE_FUNCTION), _on_postgres(DROP_FUNCTION))


def append_only(table: str) -> migrations.RunPython:
    """Refuse UPDATE and DELETE on `table` (a migration operation for the app that owns it)."""
    trigger = f"{table}_append_only"
    create = f"CREATE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {FUNCTION}();"
    drop = f"DROP TRIGGER IF EXISTS {trigger} ON {table};"
    return migrations.RunPython(_on_postgres(create), _on_postgres(drop))
