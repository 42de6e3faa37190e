"""Writes for merchants, staff, API keys, customers, bank accounts and freezes."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import AccountFreeze, ApiKey, BankAccount, Customer, Merchant, User
from apps.accounts.signals import account_unfrozen
from apps.common import caching
from apps.common.audit import audit_record
from apps.common.crypto import encrypt, fingerprint
from apps.common.errors import ConflictError, NotFoundError, ServiceError, UnprocessableError

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "rg_"
# Writing `last_used_at` on every request would turn reads into writes; once a minute is enough
# for "when was this key last used".
_LAST_USED_RESOLUTION = timedelta(minutes=1)
# The request field that carries a second-factor code (API body, console form).
OTP_FIELD = "otp_token"


def api_key_hash(raw_key: str) -> str:
    # API keys carry 256 bits of randomness, so a fast hash is sufficient (no password stretching).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, merchant: Merchant, name: str = "default", raw_key: str | None = None) -> tuple[ApiKey, str]:
    """Issue a key for `merchant`; the raw key is returned once and never stored."""
    raw = raw_key or API_KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        key = ApiKey.objects.create(merchant=merchant, name=name, prefix=raw[:11], key_hash=api_key_hash(raw))
        audit_record(
            action="api_key.create",
            target_type="api_key",
            target_id=key.pk,
            merchant_id=merchant.pk,
            after={"name": name, "prefix": key.prefix},
        )
    return key, raw


# Every API request reads its key and merchant; they change when a key is revoked or a merchant
# edited, so each process keeps what it read (apps.common.caching): a revocation or deactivation
# is seen at once by the process that made it and by every other within a second.
API_KEYS = "accounts:api_keys"
_KEY_FIELDS = tuple(f.attname for f in ApiKey._meta.concrete_fields)
_MERCHANT_FIELDS = tuple(f.attname for f in Merchant._meta.concrete_fields)


def _active_key_values(key_hash: str) -> list | None:
    """[key field values, merchant field values] of the active key with this hash, or None. A list,
    so the process's copy can note when it last wrote `last_used_at`."""
    key = (
        ApiKey.objects.select_related("merchant")
        .filter(key_hash=key_hash, revoked_at__isnull=True, merchant__is_active=True)
        .first()
    )
    if key is None:
        return None
    return [
        tuple(getattr(key, name) for name in _KEY_FIELDS),
        tuple(getattr(key.merchant, name) for name in _MERCHANT_FIELDS),
    ]


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key matching `raw_key` (with its merchant), or None. Fresh instances each call:
    the cached values are shared by the process's requests."""
    key_hash = api_key_hash(raw_key)
    values = caching.cached(API_KEYS, key_hash, lambda: _active_key_values(key_hash))
    if values is None:
        return None
    key = ApiKey.from_db("default", _KEY_FIELDS, values[0])
    key.merchant = Merchant.from_db("default", _MERCHANT_FIELDS, values[1])
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
        values[0] = tuple(now if name == "last_used_at" else v for name, v in zip(_KEY_FIELDS, values[0], strict=True))
    return key


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke a key (once: revoking a revoked key changes nothing and records nothing)."""
    now = timezone.now()
    with transaction.atomic():
        if ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now):
            audit_record(
                action="api_key.revoke",
                target_type="api_key",
                target_id=api_key.pk,
                merchant_id=api_key.merchant_id,
                before={"prefix": api_key.prefix, "revoked_at": None},
                after={"prefix": api_key.prefix, "revoked_at": now.isoformat()},
            )
    caching.changed(API_KEYS)


@transaction.atomic
def merchant_create(*, name: str) -> tuple[Merchant, str]:
    """Create a merchant and its first API key; returns the raw key (shown once)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ServiceError(_("Merchant name must be 1–200 characters."), fields={"name": [_("Invalid length.")]})
    merchant = Merchant.objects.create(name=name)
    _key, raw = api_key_create(merchant=merchant)
    return merchant, raw


def staff_create(*, merchant: Merchant, username: str, password: str, role: str, email: str = "") -> User:
    if role not in User.Role.values:
        raise ServiceError(
            format_lazy(_("Unknown role {value}."), value=repr(role)), fields={"role": [_("Unknown role.")]}
        )
    return User.objects.create_user(username=username, password=password, email=email, merchant=merchant, role=role)


def _referrer_for(*, merchant: Merchant, referrer_external_id: str | None) -> Customer | None:
    if not referrer_external_id:
        return None
    referrer = Customer.objects.filter(merchant=merchant, external_id=referrer_external_id).first()
    if referrer is None:
        raise ServiceError(_("Unknown referrer."), fields={"referrer": [_("No customer with this external_id.")]})
    return referrer


def customer_create(
    *,
    merchant: Merchant,
    external_id: str,
    name: str,
    phone: str = "",
    email: str = "",
    locale: str = "",
    referrer_external_id: str | None = None,
    registered_at: datetime | None = None,
) -> Customer:
    """Register a merchant's customer; `external_id` is unique per merchant (409 on repeat)."""
    if registered_at is not None and registered_at > timezone.now() + timedelta(minutes=2):
        raise ServiceError(_("Cannot be in the future."), fields={"registered_at": [_("Cannot be in the future.")]})
    referrer = _referrer_for(merchant=merchant, referrer_external_id=referrer_external_id)
    try:
        with transaction.atomic():
            return Customer.objects.create(
                merchant=merchant,
                external_id=external_id,
                name=name,
                phone=phone,
                email=email,
                locale=locale or merchant.default_locale,
                referrer=referrer,
                registered_at=registered_at or timezone.now(),
            )
    except IntegrityError:
        raise ConflictError(
            _("A customer with this external_id already exists."),
            code="duplicate_external_id",
            fields={"external_id": [_("Already exists.")]},
        ) from None


_CUSTOMER_EDITABLE = frozenset({"name", "phone", "email", "locale", "trust_level", "chargeback_count"})


def customer_update(*, customer: Customer, **changes) -> Customer:
    """Change contact details and trust inputs. The referrer is fixed once set (commissions rely on it)."""
    unknown = set(changes) - _CUSTOMER_EDITABLE
    if unknown:
        raise ServiceError(_("These fields cannot be changed."), fields={f: [_("Cannot be changed.")] for f in unknown})
    for field, value in changes.items():
        setattr(customer, field, value)
    customer.save(update_fields=list(changes))
    return customer


def _payee_text(value: str) -> str:
    # Runs of whitespace are one space: "王小明 " and "王小明" name the same payee.
    return " ".join(value.split())


def bank_account_get_or_create(
    *,
    merchant: Merchant,
    customer: Customer | None,
    holder_name: str,
    bank: str,
    account_number: str,
    correct_details: bool = False,
    correcting: BankAccount | None = None,
) -> BankAccount:
    """The owner's record of this payee — this number under this holder name and bank — created
    (number encrypted) on first use. Never rewrites a record a request did not name (G18): the same
    number under another holder name or bank is a new record, which callers have verified with the
    channel before money moves to it (refunds: `refund_submit`; payouts: the pre-checks).

    `correct_details=True` is the owner correcting details a bank refused (the customer's form on
    the progress page, via `refund_update_destination`): the record being corrected — `correcting`,
    else the owner's latest record of this number — takes the new holder name and bank, and must be
    verified again; the number and its fingerprint stay. A record the channel has verified is never
    corrected (a new record is made instead), nor one of another number.
    Callers: orders (payer account), refunds, payouts and withdrawals, inside their transaction."""
    digits = account_number.replace(" ", "")
    # ASCII only: str.isdigit() also takes "６２２２" or "²", which would be stored, fingerprinted
    # apart from the same number in ASCII digits and sent to channels as is.
    if not (digits.isascii() and digits.isdigit()) or not 8 <= len(digits) <= 30:
        raise ServiceError(
            _("Account number must be 8–30 digits."), fields={"account_number": [_("Must be 8–30 digits.")]}
        )
    holder_name, bank = _payee_text(holder_name), _payee_text(bank)
    fp = fingerprint(digits)
    same_number = BankAccount.objects.filter(merchant=merchant, customer=customer, fingerprint=fp)
    existing = same_number.filter(holder_name=holder_name, bank=bank).first()
    if existing is not None:
        return existing
    if correct_details:
        target = correcting if correcting is not None else same_number.order_by("-created_at", "-id").first()
        if target is not None and target.fingerprint == fp and target.verified_at is None:
            try:
                with transaction.atomic():
                    updated = BankAccount.objects.filter(pk=target.pk, verified_at__isnull=True).update(
                        holder_name=holder_name, bank=bank
                    )
            except IntegrityError:  # another request named these details meanwhile: that record
                return same_number.get(holder_name=holder_name, bank=bank)
            if updated:
                logger.info("bank account corrected by its owner account=%s", target.pk)
                target.refresh_from_db()
                return target
    try:
        with transaction.atomic():
            return BankAccount.objects.create(
                merchant=merchant,
                customer=customer,
                holder_name=holder_name,
                bank=bank,
                number_encrypted=encrypt(digits),
                last4=digits[-4:],
                fingerprint=fp,
            )
    except IntegrityError:
        return same_number.get(holder_name=holder_name, bank=bank)


def bank_account_mark_verified(*, bank_account: BankAccount) -> None:
    """Record that a channel confirmed this record's number belongs to its holder name. Callers:
    the refund and payout services, after `apps.gateways.services.destination_verify` said so."""
    now = timezone.now()
    BankAccount.objects.filter(pk=bank_account.pk, verified_at__isnull=True).update(verified_at=now)
    bank_account.verified_at = bank_account.verified_at or now


def account_freeze(
    *,
    merchant: Merchant,
    reason: str,
    customer: Customer | None = None,
    bank_account: BankAccount | None = None,
    actor: User | None = None,
    actor_label: str = "",
) -> AccountFreeze:
    """Freeze a customer and/or bank account; money to or from it stops until lifted."""
    if customer is None and bank_account is None:
        raise ServiceError(_("A freeze needs a customer or a bank account."))
    for subject in (customer, bank_account):
        if subject is not None and subject.merchant_id != merchant.pk:
            raise NotFoundError(_("Subject belongs to another merchant."))
    with transaction.atomic():
        freeze = AccountFreeze.objects.create(
            merchant=merchant,
            customer=customer,
            bank_account=bank_account,
            reason=reason,
            actor=actor,
            actor_label=actor_label or (actor.get_username() if actor else "system"),
        )
        audit_record(
            action="freeze.create",
            target_type="freeze",
            target_id=freeze.pk,
            merchant_id=merchant.pk,
            after={
                "customer": customer.external_id if customer else None,
                "bank_account": bank_account.masked_number if bank_account else None,
                "reason": reason,
            },
        )
    logger.info("account frozen freeze=%s merchant=%s by=%s", freeze.pk, merchant.pk, freeze.actor_label)
    return freeze


def account_freeze_from_request(
    *,
    merchant: Merchant,
    reason: str,
    actor_label: str,
    customer_external_id: str | None = None,
    bank_account_id: int | None = None,
    bank_account: dict | None = None,
) -> AccountFreeze:
    """A merchant freezes one of its customers (by external_id) and/or a destination account (a
    stored one by id, or by its details: stored for no customer, and held by number, see
    apps.accounts.selectors.freezes_active_for). Anything unknown — including another merchant's
    customer or account — is a ServiceError naming the field, and nothing is written.

    Money already approved, queued or retrying for the customer or account is held at its next
    submission attempt (apps.refunds / apps.payouts re-check freezes under their row lock)."""
    if bank_account_id is not None and bank_account is not None:
        raise ServiceError(
            _("Give either bank_account or bank_account_id, not both."),
            fields={"bank_account_id": [_("Not with bank_account.")]},
        )
    customer = None
    if customer_external_id is not None:
        customer = Customer.objects.filter(merchant=merchant, external_id=customer_external_id).first()
        if customer is None:
            raise ServiceError(_("Unknown customer."), fields={"customer": [_("No such customer.")]})
    with transaction.atomic():
        account = None
        if bank_account_id is not None:
            account = BankAccount.objects.filter(merchant=merchant, pk=bank_account_id).first()
            if account is None:
                raise ServiceError(_("Unknown bank account."), fields={"bank_account_id": [_("No such bank account.")]})
        elif bank_account is not None:
            account = bank_account_get_or_create(merchant=merchant, customer=None, **bank_account)
        if customer is None and account is None:
            raise ServiceError(
                _("A freeze needs a customer or a bank account."),
                fields={"customer": [_("Give customer, bank_account or bank_account_id.")]},
            )
        return account_freeze(
            merchant=merchant, reason=reason, customer=customer, bank_account=account, actor_label=actor_label
        )


def account_unfreeze(*, freeze: AccountFreeze, actor: User | None, reason: str) -> AccountFreeze:
    """Lift a freeze (once: a second lift changes nothing). After commit `account_unfrozen` is sent,
    and refunds and payouts release what this freeze held, unless another freeze still holds it
    (their pollers' sweep also releases it, should the signal be lost). Caller: the freezes API."""
    with transaction.atomic():
        updated = AccountFreeze.objects.filter(pk=freeze.pk, lifted_at__isnull=True).update(
            lifted_at=timezone.now(), lifted_by=actor, lift_reason=reason
        )
        freeze.refresh_from_db()
        if updated:
            logger.info("account freeze lifted freeze=%s", freeze.pk)
            audit_record(
                action="freeze.lift",
                target_type="freeze",
                target_id=freeze.pk,
                merchant_id=freeze.merchant_id,
                before={"lifted_at": None},
                after={"lifted_at": freeze.lifted_at.isoformat(), "lift_reason": reason},
            )
            payload = {
                "freeze_id": freeze.pk,
                "merchant_id": freeze.merchant_id,
                "customer_id": freeze.customer_id,
                "account_fingerprint": freeze.bank_account.fingerprint if freeze.bank_account_id else "",
            }
            transaction.on_commit(lambda: account_unfrozen.send(sender=AccountFreeze, **payload), robust=True)
    return freeze


# --- second factor (django-otp TOTP) -------------------------------------------------------------
# A staff member has at most one authenticator: enrolled on the console's security page
# (unconfirmed until its first code verifies), reset by an administrator in the admin.


def staff_totp_device(*, user: User, confirmed: bool = True) -> TOTPDevice | None:
    """The staff member's confirmed authenticator (or the one being enrolled), if any."""
    return TOTPDevice.objects.devices_for_user(user, confirmed=confirmed).first()


def staff_totp_enroll(*, user: User) -> TOTPDevice:
    """A fresh, unconfirmed authenticator (a new secret; an earlier unconfirmed one is dropped).
    Refused while a confirmed one exists: replacing it is an administrator's act."""
    with transaction.atomic():
        if staff_totp_device(user=user) is not None:
            raise ConflictError(
                "You already have an authenticator; an administrator can reset it.", code="otp_already_enrolled"
            )
        TOTPDevice.objects.devices_for_user(user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


def _totp_refusal(device: TOTPDevice, token: str) -> UnprocessableError | None:
    """Verify `token` on the locked `device`: None when it verifies (and is spent: the same code
    never verifies twice), else the error to show. A failure counts towards django-otp's throttle."""
    allowed, why = device.verify_is_allowed()
    if not allowed:
        until = why.get("locked_until") if why else None
        wait = f" until {until:%H:%M:%S} UTC" if until else ""
        return UnprocessableError(
            f"Too many wrong codes: wait{wait} and try again.", code="otp_throttled", fields={OTP_FIELD: ["Wait."]}
        )
    if device.verify_token(token):
        return None
    return UnprocessableError(
        "The code is wrong, expired or already used: enter the current code from your authenticator.",
        code="otp_invalid",
        fields={OTP_FIELD: ["Wrong, expired or already used."]},
    )


def staff_totp_confirm(*, user: User, token: str) -> TOTPDevice:
    """Confirm the unconfirmed authenticator with its first code. UnprocessableError when the code
    does not verify (the failure is counted: call it outside a transaction that will roll back)."""
    device = staff_totp_device(user=user, confirmed=False)
    if device is None:
        raise ConflictError("Start the enrollment first.", code="otp_not_enrolling")
    refusal = _totp_refusal(device, token.strip())
    if refusal is not None:
        raise refusal
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return device


def staff_totp_refusal(*, user: User, token: str) -> UnprocessableError | None:
    """Why this second-factor code is refused for this staff member, or None when it verifies on
    their confirmed authenticator (locked, then spent). Nothing is raised: the caller refuses its
    action *after* its transaction commits, so that a wrong code still counts towards the throttle."""
    device = TOTPDevice.objects.devices_for_user(user, confirmed=True).select_for_update().first()
    if device is None:
        return UnprocessableError(
            "This approval needs a code from your authenticator and you have none: enroll one on the "
            "console's security page (/console/security/) first.",
            code="otp_not_enrolled",
            fields={OTP_FIELD: ["Enroll an authenticator first."]},
        )
    token = (token or "").strip()
    if not token:
        return UnprocessableError(
            "This approval needs the current 6-digit code from your authenticator.",
            code="otp_required",
            fields={OTP_FIELD: ["Required for this approval."]},
        )
    return _totp_refusal(device, token)
