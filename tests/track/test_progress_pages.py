"""The progress page over the Django test client: the account-change form refuses bad input in the
customer's language and writes nothing; a link shows its own refund only (G11); last four only (G12)."""

from __future__ import annotations

import pytest

from apps.accounts.models import BankAccount
from apps.refunds.models import Refund, RefundEvent
from apps.refunds.services import refund_progress_token
from tests.factories import MerchantFactory
from tests.factories.accounts import BankAccountFactory, CustomerFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db

FULL_WIDTH = "６２２２０２１１１１１１００００"  # digits, but not ASCII ones


def make_refund(
    *, status: str = "needs_action", last4: str = "0002", locale: str = "en", merchant=None, order_no: str = ""
) -> Refund:
    merchant = merchant or MerchantFactory()
    customer = CustomerFactory(merchant=merchant, locale=locale)
    order = OrderFactory(merchant=merchant, customer=customer, **({"external_id": order_no} if order_no else {}))
    account = BankAccountFactory(merchant=merchant, customer=customer, number=f"622202000000{last4}")
    refund = Refund.objects.create(
        merchant=merchant,
        order=order,
        customer=customer,
        amount=order.amount,
        currency=order.currency,
        reason="mistake",
        destination_account=account,
        failure_code="account_frozen" if status == "needs_action" else "",
        responsible_party="customer" if status == "needs_action" else "",
    )
    Refund.objects.filter(pk=refund.pk).update(status=status)
    refund.refresh_from_db()
    for code in ("requested", "approved", "submitted", "failed", "needs_action"):
        RefundEvent.objects.create(refund=refund, code=code, message_key=f"refund.{code}", responsible_party="bank")
    return refund


def url(refund: Refund, lang: str = "") -> str:
    return f"/r/{refund_progress_token(refund)}/" + (f"?lang={lang}" if lang else "")


def writes(refund: Refund) -> tuple:
    refund.refresh_from_db()
    return (refund.status, refund.destination_account_id, refund.events.count(), BankAccount.objects.count())


@pytest.mark.parametrize(
    ("data", "lang", "error"),
    [
        ({"holder_name": "Wang", "bank": "ICBC", "account_number": "12ab"}, "en", "8 to 30 digits"),
        (
            {"holder_name": "Wang", "bank": "ICBC", "account_number": "６２２２０２１１１１１１００００"},
            "en",
            "8 to 30 digits",
        ),
        ({"holder_name": "", "bank": "ICBC", "account_number": "6222021111110000"}, "en", "This field is required."),
        ({"holder_name": "", "bank": "ICBC", "account_number": "6222021111110000"}, "zh-hans", "该字段是必填项。"),
        ({"holder_name": "Wang", "bank": "ICBC", "account_number": "1"}, "zh-hans", "请输入8到30位数字的卡号。"),
    ],
)
def test_bad_account_input_shows_an_error_in_the_customers_language_and_writes_nothing(client, data, lang, error):
    refund = make_refund()
    before = writes(refund)
    response = client.post(url(refund, lang), data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert writes(refund) == before


def test_the_refused_account_itself_is_refused_again(client):
    refund = make_refund()
    account = refund.destination_account
    before = writes(refund)
    data = {"holder_name": account.holder_name, "bank": "ICBC", "account_number": "6222020000000002"}
    response = client.post(url(refund), data)
    assert response.status_code == 400
    assert "This is the account the bank refused" in response.content.decode()
    assert writes(refund) == before


@pytest.mark.parametrize("status", ["processing", "succeeded", "rejected"])
def test_only_a_refund_that_needs_action_takes_an_account(client, status):
    refund = make_refund(status=status)
    before = writes(refund)
    response = client.post(url(refund), {"holder_name": "Wang", "bank": "ICBC", "account_number": "6222021111110000"})
    assert response.status_code == 409
    assert 'data-testid="account-form"' not in response.content.decode()
    assert writes(refund) == before


def test_the_form_needs_a_csrf_token(client):
    from django.test import Client

    refund = make_refund()
    before = writes(refund)
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(url(refund), {"holder_name": "Wang", "bank": "ICBC", "account_number": "6222021111110000"})
    assert response.status_code == 403
    assert writes(refund) == before


def test_a_link_shows_only_its_own_refund(client):
    merchant = MerchantFactory()
    mine = make_refund(last4="1111", merchant=merchant, order_no="order-mine")
    other = make_refund(last4="2222", merchant=merchant, order_no="order-other")
    page = client.get(url(mine)).content.decode()
    assert "**** 1111" in page
    assert "**** 2222" not in page
    assert other.order.external_id not in page
    assert mine.order.external_id in page


def test_pages_show_last_four_only_in_both_languages(client):
    refund = make_refund(last4="0002", locale="zh-hans")
    for lang in ("", "en", "zh-hans"):
        page = client.get(url(refund, lang)).content.decode()
        assert "6222020000000002" not in page
        assert "**** 0002" in page
    assert '<html lang="zh-hans">' in client.get(url(refund)).content.decode()
    assert '<html lang="en">' in client.get(url(refund, "en")).content.decode()
    assert "冻结" in client.get(url(refund)).content.decode()


def test_a_tampered_or_unknown_link_shows_the_invalid_page(client):
    refund = make_refund()
    token = refund_progress_token(refund)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for path in (f"/r/{tampered}/", "/r/nonsense/", f"/r/w/{token}/"):
        response = client.get(path)
        assert response.status_code == 404
        assert "Link invalid or expired" in response.content.decode()
        assert "**** 0002" not in response.content.decode()
    assert client.post(f"/r/{tampered}/", {"account_number": "6222021111110000"}).status_code == 404
