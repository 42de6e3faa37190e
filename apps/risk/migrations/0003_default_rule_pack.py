"""The default rule pack from seed practice (platform-wide; merchants can add their own or
switch a rule to shadow/disabled). Thresholds are in major units where money is involved."""

from django.db import migrations

RULES = [
    {
        "code": "large-refund-unfamiliar-account",
        "name": "Large refund to an unfamiliar account",
        "expression": "amount_major >= 10000 and unfamiliar_account",
        "action": "review",
        "severity": "P1",
        "priority": 10,
        "score_modifier": 30,
    },
    {
        "code": "refund-burst-1h",
        "name": "Five or more refunds by one customer within an hour",
        "expression": "customer_refunds_1h >= 5",
        "action": "review",
        "severity": "P1",
        "priority": 20,
        "score_modifier": 20,
    },
    {
        "code": "shared-device-or-ip-refunds",
        "name": "One device or IP refunding the same product for three or more customers in 24 h",
        "expression": "device_customers_same_product_24h >= 3 or ip_customers_same_product_24h >= 3",
        "action": "block_and_freeze",
        "severity": "P1",
        "priority": 5,
        "score_modifier": 60,
    },
    {
        "code": "aml-high-frequency",
        "name": "AML: ten or more refunds in 24 h, or a linked cluster refunding over half its orders",
        "expression": "customer_refunds_24h >= 10 or (cluster_size >= 2 and cluster_refund_rate > 0.5)",
        "action": "review",
        "severity": "P1",
        "priority": 30,
        "score_modifier": 40,
    },
]


def forward(apps, schema_editor):
    Rule = apps.get_model("risk", "Rule")
    RuleVersion = apps.get_model("risk", "RuleVersion")
    for spec in RULES:
        rule, created = Rule.objects.get_or_create(
            merchant=None,
            code=spec["code"],
            defaults={**spec, "scope": "refund", "mode": "active", "updated_by": "default rule pack"},
        )
        if created:
            RuleVersion.objects.create(
                rule=rule,
                version=1,
                expression=rule.expression,
                action=rule.action,
                mode=rule.mode,
                priority=rule.priority,
                severity=rule.severity,
                score_modifier=rule.score_modifier,
                changed_by="default rule pack",
            )


def backward(apps, schema_editor):
    Rule = apps.get_model("risk", "Rule")
    Rule.objects.filter(merchant=None, code__in=[r["code"] for r in RULES], hits__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("risk", "0002_riskmodel_clustermember_observation_rule_rulehit_and_more")]

    operations = [migrations.RunPython(forward, backward)]
