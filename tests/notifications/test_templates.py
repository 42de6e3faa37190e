"""Built-in wordings and template rows: every message renders in both languages with every value in
place, card numbers are masked (the order number is kept), the responsible party picks the
wording, defaults install once, a canary version reaches exactly its buckets, and a broken
template falls back to the built-in wording instead of raising."""

from __future__ import annotations

import re

import pytest

from apps.notifications import defaults, rendering
from apps.notifications.defaults import BUILTIN, install_default_templates
from apps.notifications.models import Template
from apps.notifications.rendering import bucket_for, forget_templates, mask_card_numbers, render

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

LOCALES = ("zh-hans", "en")
CJK = re.compile(r"[\u3400-\u9fff]")
REFERENCE = "o-20261127-42"
LINK = "https://rg.example.com/r/abc123/"
CARD = "4111111111111111"  # Luhn-valid test Visa


def sample(locale: str, **overrides) -> dict:
    """Every variable a message may use, formatted in `locale`, as the triggers pass them."""
    zh = locale == "zh-hans"
    context = {
        "reference": REFERENCE,
        "link": LINK,
        "amount": "¥199.00" if zh else "CN¥199.00",
        "account_last4": "1234",
        "bank": "工商银行" if zh else "ICBC",
        "eta": "11月28日 10:00" if zh else "28 Nov 10:00",
        "party": "bank",
        "reason": "银行反馈该账户已被冻结" if zh else "the bank says the account is frozen",
        "compensation": "一张10元无门槛优惠券" if zh else "a CNY 10 coupon with no minimum spend",
        "appeal_link": f"{LINK}#appeal",
        "change_account_link": f"{LINK}#account",
        "support_phone": "400-800-1234",
        "support_link": "https://rg.example.com/support/",
        "explanation": "超出无理由退款期限。" if zh else "The refund window has closed.",
        "guidance": "刷新页面后重试。" if zh else "Reload the page and try again.",
        "materials": "身份证正反面照片" if zh else "a photo of both sides of your ID card",
        "summary": "渠道sandbox不可用" if zh else "channel sandbox is down",
        "count": 4,
    }
    context.update(overrides)
    return context


def rendered(key: str, locale: str, *, channel: str = "", recipient_key: str = "customer:1", **overrides):
    return render(
        key=key, channel=channel, locale=locale, recipient_key=recipient_key, context=sample(locale, **overrides)
    )


def assert_language(text: str, locale: str) -> None:
    if locale == "zh-hans":
        assert CJK.search(text), text
    else:
        assert not CJK.search(text), text


def assert_filled(text: str) -> None:
    assert text.strip()
    for marker in ("{{", "}}", "{%", "%}"):
        assert marker not in text, text


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("key", defaults.KEYS)
@pytest.mark.parametrize("party", ["platform", "bank", "customer"])
def test_every_builtin_message_renders_in_both_languages_with_reference_and_link(key, locale, party):
    assert (key, locale) in BUILTIN
    result = rendered(key, locale, party=party)

    assert_filled(result.body)
    assert_filled(result.title)
    assert_language(result.body, locale)
    assert_language(result.title, locale)
    assert LINK in result.body  # the progress page (or its #appeal / #account part)
    if key != "sms_digest":  # a digest groups several messages: it names no single order
        assert REFERENCE in result.body
    assert result.version == 1  # the installed copy of the built-in wording


@pytest.mark.parametrize("locale", LOCALES)
def test_the_p0_voice_variant_is_spoken_text_without_a_link(locale):
    result = rendered("p0_page", locale, channel="voice")

    assert_filled(result.body)
    assert_language(result.body, locale)
    assert sample(locale)["summary"] in result.body
    assert "http" not in result.body
    assert result.body == rendering.render_text(BUILTIN[("p0_page", locale)]["body_voice"], sample(locale))


@pytest.mark.parametrize("locale", LOCALES)
def test_a_card_number_inside_a_value_is_shown_as_its_last_four_digits(locale):
    reason = f"card {CARD} frozen" if locale == "en" else f"卡号{CARD}已冻结"
    for spaced in (CARD, "4111 1111 1111 1111", "4111-1111-1111-1111"):
        result = rendered("refund_failed_account", locale, reason=reason.replace(CARD, spaced))

        assert "****1111" in result.body
        assert CARD not in re.sub(r"\D", "", result.body.replace(REFERENCE, ""))
        assert spaced not in result.body


def test_a_luhn_valid_order_number_given_as_reference_is_kept():
    order_number = "4012888888881881"  # Luhn-valid, 16 digits: looks like a card
    text = f"Order {order_number}, card {CARD}"

    assert mask_card_numbers(text, keep=(order_number,)) == f"Order {order_number}, card ****1111"
    assert mask_card_numbers(text) == "Order ****1881, card ****1111"
    assert mask_card_numbers("ref 79927398713 and 4111111111111112") == "ref 79927398713 and 4111111111111112"

    result = rendered("refund_failed_account", "en", reference=order_number, reason=f"card {CARD}")
    assert order_number in result.body
    assert "****1111" in result.body
    assert CARD not in result.body


@pytest.mark.parametrize("locale", LOCALES)
def test_refund_delayed_by_the_platform_offers_compensation_and_by_the_bank_names_the_bank(locale):
    context = sample(locale)
    ours = rendered("refund_delayed", locale, party="platform").body
    banks = rendered("refund_delayed", locale, party="bank").body

    assert context["compensation"] in ours
    assert context["compensation"] not in banks
    assert context["bank"] in banks
    assert context["eta"] in ours
    assert context["eta"] in banks


def test_install_default_templates_creates_every_key_and_locale_once():
    Template.objects.all().delete()  # migrate already installed them
    expected = sum(1 + sum(f"body_{c}" in texts for c in ("sms", "voice")) for texts in BUILTIN.values())

    assert install_default_templates() == expected
    assert Template.objects.count() == expected
    installed = set(Template.objects.filter(channel="").values_list("key", "locale"))
    assert installed == set(BUILTIN)
    assert set(Template.objects.values_list("version", flat=True)) == {1}
    assert Template.objects.filter(key="p0_page", channel="voice").count() == 2

    assert install_default_templates() == 0
    assert Template.objects.count() == expected


RECIPIENTS = [f"customer:{n}" for n in range(1000)]


def versions(*, key: str = "refund_approved") -> list[int]:
    forget_templates()
    return [rendered(key, "en", recipient_key=r).version for r in RECIPIENTS]


@pytest.fixture
def canary(db):
    v1 = Template.objects.get(key="refund_approved", channel="", locale="en", version=1)
    assert v1.rollout_percent == 100
    assert v1.is_active
    return Template.objects.create(
        key="refund_approved",
        channel="",
        locale="en",
        version=2,
        subject="Refund approved (v2)",
        body="V2: refund {{ amount }} for {{ reference }} approved. {{ link }}",
        rollout_percent=20,
    )


def test_a_20_percent_canary_reaches_exactly_the_recipients_whose_bucket_is_below_20(canary):
    chosen = versions()
    in_bucket = [bucket_for(recipient_key=r, template_key="refund_approved") < 20 for r in RECIPIENTS]

    assert set(chosen) == {1, 2}
    assert chosen.count(2) == sum(in_bucket)
    assert 150 <= chosen.count(2) <= 250
    assert all((v == 2) == hit for v, hit in zip(chosen, in_bucket, strict=True))
    assert versions() == chosen  # the same person always gets the same wording

    v2_body = rendered("refund_approved", "en", recipient_key=RECIPIENTS[chosen.index(2)]).body
    assert v2_body.startswith("V2:")
    assert REFERENCE in v2_body


def test_a_canary_at_0_percent_or_inactive_reaches_nobody(canary):
    canary.rollout_percent = 0
    canary.save()
    assert set(versions()) == {1}

    canary.rollout_percent = 20
    canary.is_active = False
    canary.save()
    assert set(versions()) == {1}


@pytest.mark.parametrize("broken", ["{% if %}oops", "{{ amount|no_such_filter }}", "{% for x in %}"])
def test_a_template_that_does_not_compile_falls_back_to_the_builtin_wording(broken, caplog):
    Template.objects.create(key="refund_approved", channel="", locale="en", version=3, subject="x", body=broken)
    forget_templates()

    result = rendered("refund_approved", "en")

    assert result.version == 0
    expected = rendering.render_text(BUILTIN[("refund_approved", "en")]["body"], sample("en"))
    assert result.body == expected
    assert REFERENCE in result.body
    assert LINK in result.body
    assert "failed; using the built-in wording" in caplog.text
