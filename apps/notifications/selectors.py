"""Read-only queries of the notifications app, every one scoped to its owner (a merchant or one
customer) so another tenant's rows cannot be reached by id."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import Customer, Merchant
from apps.notifications.models import Channel, Notification, Preference


def customer_get_for_merchant(*, merchant: Merchant, external_id: str) -> Customer | None:
    return Customer.objects.filter(merchant=merchant, external_id=external_id).first()


def notification_list_for_merchant(
    *,
    merchant: Merchant,
    recipient: str | None = None,
    order: str | None = None,
    status: str | None = None,
    channel: str | None = None,
    subject_type: str | None = None,
) -> QuerySet[Notification]:
    """A merchant's notifications, newest first. `recipient` is a customer's external_id, `order`
    the reference the message is about."""
    rows = Notification.objects.filter(merchant=merchant).select_related("customer", "user")
    if recipient is not None:
        rows = rows.filter(customer__external_id=recipient, customer__merchant=merchant)
    if order is not None:
        rows = rows.filter(reference=order)
    if status is not None:
        rows = rows.filter(status=status)
    if channel is not None:
        rows = rows.filter(channel=channel)
    if subject_type is not None:
        rows = rows.filter(subject_type=subject_type)
    return rows.order_by("-created_at", "-id")


def notification_get_for_merchant(*, merchant: Merchant, pk: int) -> Notification | None:
    return notification_list_for_merchant(merchant=merchant).filter(pk=pk).first()


def inbox_list_for_customer(
    *, customer: Customer, subject_type: str | None = None, subject_id: int | None = None
) -> QuerySet[Notification]:
    """The customer's inbox: their inbox-channel messages, newest first; only those about one
    refund or withdrawal when a subject is given (what its progress link may show)."""
    rows = Notification.objects.filter(customer=customer, channel=Channel.INBOX)
    if subject_type is not None:
        rows = rows.filter(subject_type=subject_type, subject_id=subject_id)
    return rows.order_by("-created_at", "-id")


def inbox_unread_count(*, customer: Customer, subject_type: str | None = None, subject_id: int | None = None) -> int:
    return (
        inbox_list_for_customer(customer=customer, subject_type=subject_type, subject_id=subject_id)
        .filter(read_at__isnull=True)
        .count()
    )


def preference_get_for_customer(*, customer: Customer) -> Preference | None:
    return Preference.objects.filter(customer=customer).first()
