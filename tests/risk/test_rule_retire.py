"""DELETE /api/v1/rules/{id} retires a rule: 204 with no body, then a 404 on every by-id route like an
unknown id, gone from the list and from the engine, while its row, versions, hits and audit rows
stay in the database; its code is free for a new rule."""

from __future__ import annotations

import pytest

from apps.common.models import AuditEntry
from apps.risk.models import Rule, RuleHit, RuleVersion
from tests.risk.support import customer, make_rule, only_merchant_rules, order, product, refund, results

pytestmark = pytest.mark.postgres


def one_refund(api) -> dict:
    return refund(api, order(api, customer(api), product(api)))


def assert_not_found(response) -> None:
    assert response.status_code == 404, (response.status_code, response.content)
    assert response.json()["error"]["code"] == "not_found"


def by_id_requests(api, rule_id: int) -> list:
    return [
        api.get(f"/api/v1/rules/{rule_id}"),
        api.patch(f"/api/v1/rules/{rule_id}", {"mode": "active"}, format="json"),
        api.get(f"/api/v1/rules/{rule_id}/versions"),
        api.get(f"/api/v1/rules/{rule_id}/stats"),
        api.delete(f"/api/v1/rules/{rule_id}"),
    ]


def test_delete_answers_204_and_the_rule_is_then_a_404_everywhere_and_not_listed(api, frozen, merchant):
    rule = make_rule(api, expression="amount >= 100", action="block", mode="active")
    kept = make_rule(api, expression="amount >= 100", action="review", mode="shadow")

    response = api.delete(f"/api/v1/rules/{rule['id']}")

    assert response.status_code == 204
    assert response.content == b""
    for after in by_id_requests(api, rule["id"]):
        assert_not_found(after)
    listed = [r["id"] for r in results(api.get("/api/v1/rules", {"limit": 200}))]
    assert rule["id"] not in listed
    assert kept["id"] in listed
    assert api.get(f"/api/v1/rules/{kept['id']}").status_code == 200


def test_a_retired_rule_is_never_evaluated_again(api, frozen, merchant):
    only_merchant_rules(merchant)
    rule = make_rule(api, expression="amount >= 100", action="block", mode="active")
    assert one_refund(api)["status"] == "rejected"  # the rule flags it while live
    hits = RuleHit.objects.count()

    assert api.delete(f"/api/v1/rules/{rule['id']}").status_code == 204
    body = one_refund(api)

    assert body["status"] == "approved"
    assert body["decision"]["rules"] == []
    assert RuleHit.objects.count() == hits


def test_retiring_keeps_the_history_and_writes_one_audit_row(api, frozen, merchant):
    only_merchant_rules(merchant)
    rule = make_rule(api, expression="amount >= 100", action="review", mode="active")
    one_refund(api)

    assert api.delete(f"/api/v1/rules/{rule['id']}").status_code == 204

    stored = Rule.objects.get(pk=rule["id"])  # never deleted: hits, cases and versions refer to it
    assert stored.retired_at is not None
    creator = RuleVersion.objects.get(rule=stored, version=1).changed_by
    assert stored.retired_by == creator != ""  # the API key that asked
    assert (stored.mode, stored.version) == (Rule.Mode.DISABLED, 2)
    assert list(RuleVersion.objects.filter(rule=stored).order_by("version").values_list("mode", flat=True)) == [
        "active",
        "disabled",
    ]
    assert RuleHit.objects.filter(rule=stored).count() == 1
    audit = AuditEntry.objects.get(action="rule.retire")
    assert (audit.target_type, audit.target_id, audit.merchant_id) == ("rule", str(stored.pk), merchant.pk)
    assert audit.before == {"mode": "active"}
    assert (audit.after["mode"], audit.after["retired_by"]) == ("disabled", stored.retired_by)


def test_delete_twice_is_a_404_and_writes_nothing_more(api, frozen, merchant):
    rule = make_rule(api, expression="amount >= 100")
    assert api.delete(f"/api/v1/rules/{rule['id']}").status_code == 204
    audit_rows, versions = AuditEntry.objects.count(), RuleVersion.objects.count()
    retired_at = Rule.objects.get(pk=rule["id"]).retired_at

    assert_not_found(api.delete(f"/api/v1/rules/{rule['id']}"))

    assert (AuditEntry.objects.count(), RuleVersion.objects.count()) == (audit_rows, versions)
    assert Rule.objects.get(pk=rule["id"]).retired_at == retired_at


def test_another_merchants_rule_cannot_be_retired(api, other_api, frozen):
    theirs = make_rule(other_api, expression="amount >= 100")

    assert_not_found(api.delete(f"/api/v1/rules/{theirs['id']}"))

    assert Rule.objects.get(pk=theirs["id"]).retired_at is None
    assert other_api.get(f"/api/v1/rules/{theirs['id']}").status_code == 200
    assert not AuditEntry.objects.filter(action="rule.retire").exists()


def test_a_retired_rules_code_can_be_used_by_a_new_rule(api, frozen):
    old = make_rule(api, code="big-refund", expression="amount >= 100")
    duplicate = api.post(
        "/api/v1/rules",
        {"code": "big-refund", "name": "n", "scope": "refund", "expression": "amount > 1", "action": "review"},
        format="json",
    )
    assert duplicate.status_code == 409  # unique among live rules
    assert api.delete(f"/api/v1/rules/{old['id']}").status_code == 204

    new = make_rule(api, code="big-refund", expression="amount >= 500")

    assert new["id"] != old["id"]
    assert api.get(f"/api/v1/rules/{new['id']}").json()["expression"] == "amount >= 500"
    assert Rule.objects.filter(code="big-refund").count() == 2


def test_the_admin_shows_a_retired_rule_read_only(api, admin_client, frozen):
    live = Rule.objects.get(pk=make_rule(api, code="still-live", expression="amount >= 100")["id"])
    retired = make_rule(api, code="gone-rule", expression="amount >= 100")
    assert api.delete(f"/api/v1/rules/{retired['id']}").status_code == 204
    url = f"/admin/risk/rule/{retired['id']}/change/"

    page = admin_client.get(url)
    edit = admin_client.post(url, {"name": "edited", "mode": "active"})

    assert page.status_code == 200
    assert "gone-rule" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert edit.status_code == 403
    stored = Rule.objects.get(pk=retired["id"])
    assert (stored.name, stored.mode) == ("test rule", Rule.Mode.DISABLED)
    assert 'name="_save"' in admin_client.get(f"/admin/risk/rule/{live.pk}/change/").content.decode()
    listed = admin_client.get("/admin/risk/rule/", {"retired_at__isempty": "0"}).content.decode()
    assert "gone-rule" in listed
    assert "still-live" not in listed
