"""Learning: the nightly model behind the `model_score` feature.

Labels (one per refund, from the refund observation's feature snapshot taken when it was judged),
strongest evidence first:
1. a decided review Case of the refund: decline → 1 (abuse), approve → 0 — a person looked at it;
2. the refund ended `reversed` (the bank returned the money: closed/abandoned account) → 1;
3. the customer was frozen by a risk rule (AccountFreeze reason "risk rule …") at or after the
   observation → 1;
4. the refund `succeeded` and its verify window (Refund.verify_until) has passed without a return
   → 0.
Anything else (still in flight, rejected without review, cancelled, …) is unlabelled and skipped.
Rejected refunds are deliberately not labelled 1: a policy rejection ("too late") says nothing
about abuse, and would teach the model the policy rather than the fraud.

Features: the numeric and boolean entries of the snapshot in FEATURE_TYPES order, except
`model_score` itself (a model must not learn from its predecessor's output) and strings; missing
entries (older snapshots) are 0.

The model (GradientBoostingClassifier, see the note in `risk_model_train`) is fitted on a
stratified 75/25 split with a fixed random_state; the validation quarter gives ROC AUC and
precision/recall at 0.5. Every fitted model is stored as a new RiskModel version; it becomes the
active one only if its AUC reaches `auc_floor`, otherwise the previous active model keeps
scoring. With too little labelled data, or one class only, nothing is stored and the result
says why.

`risk` sits below `refunds` (DESIGN.md floors), so refund outcomes are read through the app
registry (`apps.get_model`), never imported: a read-only lookup of status by id.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import joblib
import numpy as np
from django.apps import apps
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split

from apps.accounts.models import AccountFreeze
from apps.risk.features import FEATURE_TYPES
from apps.risk.models import Case, Observation, RiskModel, Scope

logger = logging.getLogger(__name__)

FEATURE_NAMES: list[str] = [
    name for name, kind in FEATURE_TYPES.items() if kind in ("float", "boolean") and name != "model_score"
]
ALGORITHM = "sklearn.GradientBoostingClassifier"
RANDOM_STATE = 20240607
VALIDATION_FRACTION = 0.25
# How far back labelled refunds are used; older behaviour is less like tomorrow's.
TRAINING_WINDOW = timedelta(days=180)
_ID_CHUNK = 10_000


@dataclass(frozen=True)
class TrainingResult:
    status: str  # "trained" | "insufficient_data"
    reason: str = ""
    version: int | None = None
    activated: bool = False
    samples: int = 0
    positives: int = 0
    negatives: int = 0
    metrics: dict = field(default_factory=dict)


def feature_vector(features: dict, names: list[str] = FEATURE_NAMES) -> list[float]:
    """The model's input row for one feature dict (booleans as 0/1, missing as 0)."""
    return [float(features.get(name) or 0.0) for name in names]


def _refund_outcomes(subject_ids: list[int]) -> dict[int, tuple[str, datetime | None]]:
    refund_model = apps.get_model("refunds", "Refund")
    outcomes: dict[int, tuple[str, datetime | None]] = {}
    for start in range(0, len(subject_ids), _ID_CHUNK):
        chunk = subject_ids[start : start + _ID_CHUNK]
        for pk, status, verify_until in refund_model.objects.filter(pk__in=chunk).values_list(
            "pk", "status", "verify_until"
        ):
            outcomes[pk] = (status, verify_until)
    return outcomes


def labelled_dataset(*, now: datetime, since: datetime) -> tuple[np.ndarray, np.ndarray, dict]:
    """(X, y, label source counts) for refund observations in [since, now). See the module doc."""
    snapshots: dict[int, tuple[int | None, datetime, dict]] = {}
    rows = (
        Observation.objects.filter(
            scope=Scope.REFUND, subject_id__isnull=False, created_at__gte=since, created_at__lt=now
        )
        .order_by("created_at", "id")
        .values_list("subject_id", "customer_id", "created_at", "features")
    )
    for subject_id, customer_id, created_at, features in rows.iterator(chunk_size=5000):
        # A refund judged twice keeps its first snapshot: what was known when it was requested.
        snapshots.setdefault(subject_id, (customer_id, created_at, features or {}))

    decisions = dict(
        Case.objects.filter(
            subject_type="refund",
            status=Case.Status.DECIDED,
            decision__in=(Case.Decision.APPROVE, Case.Decision.DECLINE),
            created_at__gte=since,
        ).values_list("subject_id", "decision")
    )
    outcomes = _refund_outcomes(list(snapshots))
    frozen_at = dict(
        AccountFreeze.objects.filter(customer__isnull=False, reason__startswith="risk rule")
        .values("customer_id")
        .annotate(first=Min("created_at"))
        .values_list("customer_id", "first")
    )

    features_rows: list[list[float]] = []
    labels: list[int] = []
    sources = {"case_decline": 0, "case_approve": 0, "reversed": 0, "risk_freeze": 0, "succeeded_verified": 0}
    for subject_id, (customer_id, created_at, features) in snapshots.items():
        status, verify_until = outcomes.get(subject_id, ("", None))
        freeze = frozen_at.get(customer_id) if customer_id else None
        if subject_id in decisions:
            label, source = (
                (1, "case_decline") if decisions[subject_id] == Case.Decision.DECLINE else (0, "case_approve")
            )
        elif status == "reversed":
            label, source = 1, "reversed"
        elif freeze is not None and freeze >= created_at:
            label, source = 1, "risk_freeze"
        elif status == "succeeded" and verify_until is not None and verify_until < now:
            label, source = 0, "succeeded_verified"
        else:
            continue
        sources[source] += 1
        features_rows.append(feature_vector(features))
        labels.append(label)
    x = np.asarray(features_rows, dtype=float).reshape(-1, len(FEATURE_NAMES))
    return x, np.asarray(labels, dtype=int), sources


def _insufficient(reason: str, *, samples: int, positives: int, negatives: int) -> TrainingResult:
    logger.warning("risk model not trained: %s", reason)
    return TrainingResult(
        status="insufficient_data", reason=reason, samples=samples, positives=positives, negatives=negatives
    )


def risk_model_train(
    *,
    now: datetime | None = None,
    min_samples: int = 200,
    min_per_class: int = 20,
    auc_floor: float = 0.6,
) -> TrainingResult:
    """Fit a new scoring model on labelled refunds and store it as the next RiskModel version;
    activate it (deactivating the previous one) only if its validation AUC ≥ `auc_floor`.

    With fewer than `min_samples` labelled refunds or fewer than `min_per_class` of either class,
    nothing is written and an "insufficient_data" result is returned (and logged). Reads
    observations, cases, refunds and freezes; writes one RiskModel row (and `is_active` flips) in
    one transaction. Called nightly by `risk_model_train_task`, once per UTC day (its period
    claim); called directly, it trains again.
    """
    now = now or timezone.now()
    x, y, sources = labelled_dataset(now=now, since=now - TRAINING_WINDOW)
    samples, positives = len(y), int(y.sum()) if len(y) else 0
    negatives = samples - positives
    if samples < min_samples:
        return _insufficient(
            f"{samples} labelled refunds, need {min_samples}", samples=samples, positives=positives, negatives=negatives
        )
    if min(positives, negatives) < min_per_class:
        return _insufficient(
            f"{positives} abusive and {negatives} legitimate labelled refunds, need {min_per_class} of each",
            samples=samples,
            positives=positives,
            negatives=negatives,
        )

    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=VALIDATION_FRACTION, stratify=y, random_state=RANDOM_STATE
    )
    # Classic GradientBoostingClassifier, not the histogram variant: scoring one request with the
    # histogram model costs 1–3 ms (an OpenMP fork/join per tree) against ~0.25 ms here, and the
    # score is computed on every decision. Training is slower but runs nightly on modest data.
    model = GradientBoostingClassifier(
        n_estimators=150, max_depth=3, learning_rate=0.1, subsample=0.8, random_state=RANDOM_STATE
    )
    model.fit(x_train, y_train)
    probabilities = model.predict_proba(x_val)[:, 1]
    predicted = (probabilities >= 0.5).astype(int)
    metrics = {
        "roc_auc": round(float(roc_auc_score(y_val, probabilities)), 4),
        "precision_at_0_5": round(float(precision_score(y_val, predicted, zero_division=0)), 4),
        "recall_at_0_5": round(float(recall_score(y_val, predicted, zero_division=0)), 4),
        "train_samples": len(y_train),
        "validation_samples": len(y_val),
        "positives": positives,
        "negatives": negatives,
        "label_sources": sources,
        "auc_floor": auc_floor,
        "random_state": RANDOM_STATE,
    }
    activate = metrics["roc_auc"] >= auc_floor
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)

    with transaction.atomic():
        # Lock the current active row so two trainers cannot both activate (and number) at once.
        list(RiskModel.objects.select_for_update().filter(is_active=True))
        version = (RiskModel.objects.aggregate(v=Max("version"))["v"] or 0) + 1
        if activate:
            RiskModel.objects.filter(is_active=True).update(is_active=False)
        RiskModel.objects.create(
            version=version,
            algorithm=ALGORITHM,
            feature_names=FEATURE_NAMES,
            metrics=metrics,
            samples=samples,
            blob=buffer.getvalue(),
            is_active=activate,
            trained_at=now,
        )
    logger.info(
        "risk model v%s trained on %s samples: auc=%s activated=%s", version, samples, metrics["roc_auc"], activate
    )
    return TrainingResult(
        status="trained",
        reason="" if activate else f"validation AUC {metrics['roc_auc']} below floor {auc_floor}: not activated",
        version=version,
        activated=activate,
        samples=samples,
        positives=positives,
        negatives=negatives,
        metrics=metrics,
    )
