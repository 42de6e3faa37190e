"""The payouts' and withdrawals' ledger postings, and the money an incident gets back.

References "<kind>:<id>:<step>"; owner = merchant_payable for payouts, customer_balance for
withdrawals, via fx_clearing when the currencies differ:
  inflight   source → payouts_in_flight, at the first submit (a retry reuses it)
  paid       payouts_in_flight → cash_clearing
  release    payouts_in_flight → source, after a final failure or a cancel while in flight
  returned   cash_clearing → source (the bank gave the money back)
  recalled   cash_clearing → source (a recall succeeded)
  recovered:<n>  cash_clearing → source (a negotiated return, part of the amount)
After the in-flight posting the source balance must still be owed (never negative), or the
posting is rolled back and the movement held.
"""

from __future__ import annotations

from django.db import transaction

from apps.ledger.models import LedgerAccount
from apps.ledger.services import Line, ledger_account_get_or_create, ledger_post
from apps.payouts.checks import source_ledger_key, source_owed
from apps.payouts.models import Disbursement, Incident, IncidentStep


def platform_account(kind: str, currency: str) -> LedgerAccount:
    return ledger_account_get_or_create(owner="platform", kind=kind, currency=currency)


def source_lines(d: Disbursement, *, counter: LedgerAccount, amount: int, source_amount: int, out: bool) -> list[Line]:
    """Lines moving `source_amount` out of (or back into) the source account against `amount` on
    `counter` (in the payout currency). Across currencies both legs go through fx_clearing, so each
    currency balances on its own."""
    sign = 1 if out else -1  # money leaving a liability debits it
    owner, kind = source_ledger_key(d)
    source = ledger_account_get_or_create(owner=owner, kind=kind, currency=d.source_currency)
    if not d.is_cross_currency:
        return [Line(source, sign * source_amount), Line(counter, -sign * amount)]
    fx_source = platform_account(LedgerAccount.Kind.FX_CLEARING, d.source_currency)
    fx_target = platform_account(LedgerAccount.Kind.FX_CLEARING, d.currency)
    return [
        Line(source, sign * source_amount),
        Line(fx_source, -sign * source_amount),
        Line(fx_target, sign * amount),
        Line(counter, -sign * amount),
    ]


def post_step(d: Disbursement, step: str, lines: list[Line], description: str) -> None:
    ledger_post(
        reference=f"{d.owner_reference}:{step}",
        kind=f"{d.kind}_{step.split(':')[0]}",
        lines=lines,
        description=description,
    )


def _in_flight() -> str:
    return LedgerAccount.Kind.PAYOUTS_IN_FLIGHT


class _WouldOverdrawError(Exception):
    """The in-flight posting would leave the source owing the platform."""


def post_in_flight(d: Disbursement) -> bool:
    """Post source → in flight; False (and nothing posted) if the source balance would go negative."""
    flight = platform_account(_in_flight(), d.currency)
    try:
        with transaction.atomic():
            post_step(
                d,
                "inflight",
                source_lines(d, counter=flight, amount=d.amount, source_amount=d.source_amount, out=True),
                f"{d.kind} {d.pk} sent",
            )
            # Read after our own UPDATE of the balance row: it includes every committed posting
            # and waits for none (we hold the row lock), so it is the real balance.
            if source_owed(d) < 0:
                raise _WouldOverdrawError
    except _WouldOverdrawError:
        return False
    return True


def release_funds(d: Disbursement, why: str) -> None:
    if not d.has_funds_in_flight:
        return
    flight = platform_account(_in_flight(), d.currency)
    post_step(
        d,
        "release",
        source_lines(d, counter=flight, amount=d.amount, source_amount=d.source_amount, out=False),
        f"{d.kind} {d.pk} released: {why}",
    )
    d.has_funds_in_flight = False


def to_source(d: Disbursement, amount: int) -> int:
    """Part of the payout amount in source units, proportional to the original conversion, rounded
    down (a partial return never credits more than was taken)."""
    if not d.is_cross_currency:
        return amount
    return amount * d.source_amount // d.amount


def _recovered(d: Disbursement) -> int:
    """What negotiated returns already brought back of this movement's amount."""
    return sum(Incident.objects.filter(disbursement=d).values_list("amount_recovered", flat=True))


def money_back(d: Disbursement, step: str, amount: int, why: str) -> int:
    """Post `amount` (payout currency) from cash back to the source; returns what was posted."""
    if amount <= 0:
        return 0
    cash = platform_account(LedgerAccount.Kind.CASH_CLEARING, d.currency)
    source_amount = d.source_amount if amount == d.amount else to_source(d, amount)
    post_step(d, step, source_lines(d, counter=cash, amount=amount, source_amount=source_amount, out=False), why)
    return amount


def all_back(d: Disbursement, step: str, actor: str, why: str) -> None:
    """The whole movement came back (bank return, recall): post what negotiated returns did not
    already bring back, and close the gap in the open incident."""
    incident = open_incident(d)
    outstanding = d.amount - _recovered(d)
    posted = money_back(d, step, outstanding, why)
    if incident is not None and posted:
        incident.amount_recovered = min(incident.amount_at_risk, incident.amount_recovered + posted)
        incident.save(update_fields=["amount_recovered"])
        action = IncidentStep.Action.RECALL_SUCCEEDED if step == "recalled" else IncidentStep.Action.FUNDS_RETURNED
        incident_step(
            incident, action, actor=actor, amount=posted, detail={"ledger_reference": f"{d.owner_reference}:{step}"}
        )


def open_incident(d: Disbursement) -> Incident | None:
    return Incident.objects.select_for_update().filter(disbursement=d).exclude(status=Incident.Status.RESOLVED).first()


def incident_step(incident: Incident | None, action: str, *, actor: str, notes: str = "", amount=None, detail=None):
    if incident is None:
        return None
    return IncidentStep.objects.create(
        incident=incident, action=action, actor=actor[:150], notes=notes, amount=amount, detail=detail or {}
    )
