"""Short in-process caches for the risk engine's slowly changing configuration.

Every decision used to read the active model id, the merchant's baselines, the merchant's rules
and its allow/block list from the database: four statements (and ORM model instances) for data
that changes nightly or when a person edits it. They are kept per process by apps.common.caching
(per-kind generation numbers in the shared cache; see there for when a change is seen), like the
reason phrases in apps/refunds/routing.py: a save or delete of a Rule, ListEntry, RiskModel or
MerchantBaseline bumps its kind's generation.
"""

from __future__ import annotations

from apps.common.caching import cached, changed, clear  # noqa: F401 - the risk engine's cache API

RULES, LISTS, MODEL, BASELINES = "risk:rules", "risk:lists", "risk:model", "risk:baselines"


def connect_signals() -> None:
    """Called from RiskConfig.ready()."""
    from apps.common.caching import changed_on_save
    from apps.risk.models import ListEntry, MerchantBaseline, RiskModel, Rule

    for model, name in ((Rule, RULES), (ListEntry, LISTS), (RiskModel, MODEL), (MerchantBaseline, BASELINES)):
        changed_on_save(model, name)
