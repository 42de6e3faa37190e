"""Ledger fixtures: the live sandbox bank and refund timings, imported (not copied) for the end to
end reconciliation test."""

from tests.refunds.conftest import bank, refund_settings, sandbox_settings  # noqa: F401 (fixtures)
