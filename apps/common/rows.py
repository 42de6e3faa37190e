"""Model instances from a hand-written SELECT, for the few statements on a hot path where building
and compiling the queryset costs the web process more than PostgreSQL spends answering (an order
with its customer, product, refund policy and payer account: ~1.5 ms of ORM against ~0.1 ms).

`Columns(model, alias)` names every concrete column of `model` as `alias."column"` in field order;
`build(row, offset)` turns that slice of a fetched row into an instance as the ORM would: the
database backend's and the fields' converters applied (none on PostgreSQL for the models read this
way; SQLite turns its text timestamps into datetimes), then `Model.from_db`.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections


class Columns:
    def __init__(self, model, alias: str) -> None:
        fields = model._meta.concrete_fields
        self.model = model
        self.attnames = [f.attname for f in fields]
        self.sql = ", ".join(f'{alias}."{f.column}"' for f in fields)
        self.count = len(fields)
        self._pk = self.attnames.index(model._meta.pk.attname)
        self._fields = fields
        self._converters: list | None = None  # per column, found on first use (needs the connection)

    def _converters_of(self, connection) -> list:
        if self._converters is None:
            found = []
            for index, field in enumerate(self._fields):
                column = field.get_col(self.model._meta.db_table)
                converters = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
                if converters:
                    found.append((index, column, converters))
            self._converters = found
        return self._converters

    def build(self, row, offset: int = 0):
        """The instance whose columns start at row[offset], or None when its primary key is NULL
        (the missing side of a LEFT JOIN)."""
        values = row[offset : offset + self.count]
        if values[self._pk] is None:
            return None
        connection = connections[DEFAULT_DB_ALIAS]
        converters = self._converters_of(connection)
        if converters:
            values = list(values)
            for index, column, functions in converters:
                for convert in functions:
                    values[index] = convert(values[index], column, connection)
        return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, values)
