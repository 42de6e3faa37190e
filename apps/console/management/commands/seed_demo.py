"""Demo data for `make run`: a merchant, staff, catalogue, customers in a distributor tree, orders.

Idempotent: everything is looked up by its natural key first, so running it twice changes nothing.
"""

from __future__ import annotations

from base64 import b32encode
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import ApiKey, Customer, Merchant, User
from apps.accounts.services import api_key_create, api_key_hash, customer_create, staff_create, staff_totp_device
from apps.commissions.models import CommissionPlan
from apps.commissions.services import commission_plan_create
from apps.gateways.services import ensure_sandbox_channel
from apps.orders.models import Order, Product
from apps.orders.services import order_create, product_create, usage_record

DEMO_MERCHANT = "链动小铺 Demo Shop"
# Known only because it is the demo: real keys are random and shown once.
DEMO_API_KEY = "rg_demo_local_only_key_0000000000000000"
DEMO_PASSWORD = "refundguard-demo"
# The two demo approvers' authenticators (TOTP secrets, hex as django-otp stores them; known only
# because it is the demo). A payout at or above PAYOUT_LARGE_AMOUNT needs both approvers, the second
# with the current code: add the printed base32 secret to any authenticator app, or run
# `oathtool --totp -b <secret>`. Real staff enroll their own on the console's security page.
DEMO_APPROVER_TOTP_KEYS = {
    "finance": "526566756e64477561726444656d6f46696e3031",
    "demo": "526566756e64477561726444656d6f4f776e3031",
}

PRODUCTS = [
    (
        "ppt-master",
        "PPT大师进阶课",
        "course",
        19900,
        {"unconditional_minutes": 15, "conditional_hours": 24, "max_progress_pct": 10},
    ),
    ("office-key", "Office 专业版激活码", "license_key", 29900, {}),
    ("vip-month", "会员月卡", "membership", 3000, {}),
    ("design-pack", "设计素材包", "file", 9900, {}),
    ("resume-tpl", "Resume template", "template", 1900, {}),
    ("mug", "Branded mug", "physical", 4900, {"unconditional_minutes": 0, "conditional_hours": 0}),
]

CUSTOMERS = [
    # external_id, name, phone, email, locale, referrer
    ("c-0800", "李团长", "+8613900000800", "li@example.com", "zh-hans", None),
    ("c-0900", "张推广", "+8613900000900", "zhang@example.com", "zh-hans", "c-0800"),
    ("c-1001", "王小明", "+8613800000000", "wang@example.com", "zh-hans", "c-0900"),
    ("c-1002", "Alice Chen", "+14155550102", "alice@example.com", "en", "c-0900"),
    ("c-1003", "赵六", "+8613800000003", "zhao@example.com", "zh-hans", None),
]

# external_id, customer, sku, minutes ago, account suffix (sandbox bank behaviour), usage
ORDERS = [
    ("o-1", "c-1001", "ppt-master", 5, "0000", []),
    ("o-2", "c-1001", "office-key", 120, "0001", [("key_revealed", None)]),
    ("o-3", "c-1002", "ppt-master", 90, "0002", [("progress", 20)]),
    ("o-4", "c-1002", "vip-month", 3 * 24 * 60, "0003", []),
    ("o-5", "c-1003", "design-pack", 10, "0004", []),
    ("o-6", "c-1003", "resume-tpl", 30, "0005", [("download", None)]),
    ("o-7", "c-1001", "vip-month", 60, "0006", [("progress", 5)]),
    ("o-8", "c-1002", "design-pack", 8, "0007", []),
    ("o-9", "c-1003", "ppt-master", 200, "0008", []),
    ("o-10", "c-1001", "mug", 2 * 24 * 60, "0009", []),
]


class Command(BaseCommand):
    help = "Fill a demo merchant, staff, catalogue, customers, distributors and orders (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Run even with DEBUG off.")

    @transaction.atomic
    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError("seed_demo creates known passwords and keys; refusing with DEBUG off (use --force).")
        # The channels refunds and payouts leave through: the sandbox bank and its backup.
        if settings.SANDBOX_WEBHOOK_SECRET:
            ensure_sandbox_channel()
        merchant, _ = Merchant.objects.get_or_create(name=DEMO_MERCHANT)
        if not ApiKey.objects.filter(key_hash=api_key_hash(DEMO_API_KEY)).exists():
            api_key_create(merchant=merchant, name="demo", raw_key=DEMO_API_KEY)

        for username, role in (
            ("demo", "owner"),
            ("operator", "operator"),
            ("reviewer", "reviewer"),
            ("finance", "finance"),
        ):
            if not User.objects.filter(username=username).exists():
                staff_create(merchant=merchant, username=username, password=DEMO_PASSWORD, role=role)
        for username, key in DEMO_APPROVER_TOTP_KEYS.items():
            approver = User.objects.get(username=username)
            if staff_totp_device(user=approver) is None:
                TOTPDevice.objects.create(user=approver, name="authenticator (demo)", key=key, confirmed=True)
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser(username="admin", password=DEMO_PASSWORD, email="admin@example.com")

        # The on-call engineer P0 alerts page (SMS + voice, recorded by the sandbox provider).
        oncall = settings.ALERT_ONCALL_ROTA[0] if settings.ALERT_ONCALL_ROTA else ""
        if oncall and not User.objects.filter(username=oncall).exists():
            User.objects.create_user(
                username=oncall,
                password=DEMO_PASSWORD,
                is_staff=True,
                phone="+8613900000000",
                email="oncall@example.com",
            )
        # Distributors earn 10 % on their direct referrals' orders and 5 % one level up.
        if not CommissionPlan.objects.filter(merchant=merchant, product__isnull=True).exists():
            commission_plan_create(merchant=merchant, levels=[1000, 500], name="Demo distributor plan")

        for sku, name, kind, price, policy in PRODUCTS:
            if not Product.objects.filter(merchant=merchant, sku=sku).exists():
                product_create(
                    merchant=merchant, sku=sku, name=name, kind=kind, price=price, currency="CNY", refund_policy=policy
                )

        for external_id, name, phone, email, locale, referrer in CUSTOMERS:
            if not Customer.objects.filter(merchant=merchant, external_id=external_id).exists():
                customer_create(
                    merchant=merchant,
                    external_id=external_id,
                    name=name,
                    phone=phone,
                    email=email,
                    locale=locale,
                    referrer_external_id=referrer,
                    registered_at=timezone.now() - timedelta(days=400 if referrer is None else 30),
                )

        now = timezone.now()
        created = 0
        for index, (external_id, customer_id, sku, minutes_ago, suffix, usage) in enumerate(ORDERS):
            if Order.objects.filter(merchant=merchant, external_id=external_id).exists():
                continue
            customer = Customer.objects.get(merchant=merchant, external_id=customer_id)
            product = Product.objects.get(merchant=merchant, sku=sku)
            order = order_create(
                merchant=merchant,
                external_id=external_id,
                customer_external_id=customer_id,
                product_sku=sku,
                amount=product.price,
                currency=product.currency,
                paid_at=now - timedelta(minutes=minutes_ago),
                payment_method="card",
                device_id=f"d-{customer_id}",
                ip=f"203.0.113.{10 + index}",
                payer_account={
                    "holder_name": customer.name,
                    "bank": "ICBC",
                    "account_number": f"62220200000{index:01d}{suffix}",
                },
            )
            for kind, value in usage:
                usage_record(order=order, kind=kind, value=value, occurred_at=order.paid_at + timedelta(minutes=1))
            created += 1

        self.stdout.write(
            f"demo merchant {merchant.pk} ready: {created} new orders; "
            f"console login demo / {DEMO_PASSWORD}; admin login admin / {DEMO_PASSWORD}; "
            f"API key {DEMO_API_KEY}"
        )
        # Large payouts need two approvers (finance, demo), the second with an authenticator code.
        for username, key in DEMO_APPROVER_TOTP_KEYS.items():
            secret = b32encode(bytes.fromhex(key)).decode()
            self.stdout.write(f"approver {username} / {DEMO_PASSWORD}: authenticator secret {secret}")
