"""The learned score: the active RiskModel's probability that a request is abusive.

Models are trained nightly (apps.risk.learning) and loaded once per process per version; which
version is active is itself cached per process (apps.risk.caching: a saved RiskModel bumps it).
"""

from __future__ import annotations

import io
from functools import lru_cache

import joblib

from apps.risk import caching
from apps.risk.models import RiskModel


@lru_cache(maxsize=2)
def _load(pk: int, version: int):
    # Keyed by row id as well as version: a version number reused after a database reset (tests,
    # a restored dump) must not serve a stale model from this process's cache.
    row = RiskModel.objects.get(pk=pk, version=version)
    return joblib.load(io.BytesIO(bytes(row.blob))), list(row.feature_names)


def _load_active() -> tuple[int, int] | None:
    return RiskModel.objects.filter(is_active=True).order_by("-version").values_list("pk", "version").first()


def _active() -> tuple[int, int] | None:
    return caching.cached(caching.MODEL, "active", _load_active)


def active_model_version() -> int | None:
    active = _active()
    return active[1] if active else None


def model_score(features: dict) -> float:
    """Probability of abuse from the active model, or 0.0 when no model has been trained yet."""
    active = _active()
    if active is None:
        return 0.0
    model, names = _load(*active)
    # Booleans count as 0/1 and features a newer engine no longer computes as 0 (as in training).
    row = [[float(features.get(name) or 0.0) for name in names]]
    return float(model.predict_proba(row)[0][1])
