"""Template admin (pytest-django's `admin_client`, a superuser): the change form previews the
wording with sample values in its locale (one rendering per responsible party), shows the error of
a template that does not render, refuses to save a body that does not compile, and a saved wording
is used at once (the cache is dropped). Notifications are read-only in the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.notifications import services
from apps.notifications.admin import render_preview
from apps.notifications.models import Notification, Template
from apps.notifications.rendering import RenderError, render
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def change_url(template: Template) -> str:
    return reverse("admin:notifications_template_change", args=[template.pk])


def builtin(locale: str) -> Template:
    """The installed built-in wording of refund_delayed (post_migrate), or a copy of it."""
    from apps.notifications.defaults import BUILTIN

    texts = BUILTIN[("refund_delayed", locale)]
    template, _ = Template.objects.get_or_create(
        key="refund_delayed",
        channel="",
        locale=locale,
        version=1,
        defaults={"subject": texts["subject"], "body": texts["body"]},
    )
    return template


def test_preview_renders_the_chinese_wording_with_sample_values(admin_client):
    page = admin_client.get(change_url(builtin("zh-hans"))).content.decode()

    assert "退款延迟到账" in page
    assert "o-20261127-001" in page
    assert "¥199.00" in page
    assert "工商银行处理延迟" in page  # party=bank branch
    assert "我方系统故障" in page  # party=platform branch
    assert "https://refundguard.example/r/sample-token/" in page
    assert "does not render" not in page


def test_preview_renders_the_english_wording_with_sample_values(admin_client):
    page = admin_client.get(change_url(builtin("en"))).content.decode()

    assert "Your refund is delayed" in page
    assert "o-20261127-001" in page
    assert "CNY 199.00" in page
    assert "ICBC is taking longer than usual" in page
    assert "a fault in our system" in page


def test_render_preview_gives_one_rendering_per_party():
    rendered = render_preview(subject="{{ reference }}", body="{{ party }}: {{ amount }}", locale="zh-hans")

    assert rendered == [
        ("bank", "o-20261127-001", "bank: ¥199.00"),
        ("platform", "o-20261127-001", "platform: ¥199.00"),
        ("customer", "o-20261127-001", "customer: ¥199.00"),
        ("merchant", "o-20261127-001", "merchant: ¥199.00"),
    ]


def test_preview_masks_a_card_number_as_recipients_get_it():
    [(_, _, body)] = render_preview(subject="", body="card 4111 1111 1111 1111 for {{ reference }}", locale="en")

    assert body == "card ****1111 for o-20261127-001"


def test_preview_of_a_broken_template_shows_its_error(admin_client):
    broken = Template.objects.create(key="refund_delayed", locale="en", version=9, body="{% if amount %}never closed")

    response = admin_client.get(change_url(broken))

    assert response.status_code == 200
    page = response.content.decode()
    assert "This template does not render" in page
    assert "endif" in page  # Django's message names the missing tag
    with pytest.raises(RenderError):
        render_preview(subject="", body=broken.body, locale="en")


def form_data(**overrides) -> dict:
    data = {
        "key": "refund_delayed",
        "channel": "sms",
        "locale": "en",
        "version": "2",
        "subject": "Refund late",
        "body": "Order {{ reference }}: {{ amount }} is late. {{ link }}",
        "rollout_percent": "100",
        "is_active": "on",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("field", "source"),
    [
        ("body", "{% if amount %}never closed"),
        ("body", "{{ amount|nosuchfilter }}"),
        ("body", "{% load nosuchlibrary %}"),
        ("subject", "{% for x in %}"),
    ],
)
def test_a_template_that_does_not_compile_is_refused(admin_client, field, source):
    before = Template.objects.count()

    response = admin_client.post(reverse("admin:notifications_template_add"), form_data(**{field: source}))

    assert response.status_code == 200  # the form again, with the error
    assert "does not compile" in response.content.decode()
    assert response.context["adminform"].form.errors[field]
    assert Template.objects.count() == before


def test_saving_a_template_makes_it_the_wording_at_once(admin_client, django_capture_on_commit_callbacks):
    context = {"reference": "o-1", "amount": "CNY 199.00", "link": "http://x/r/t/"}
    old = render(key="refund_delayed", channel="sms", locale="en", recipient_key="customer:1", context=context)
    assert "Order o-1" not in old.body  # the cached table does not know version 2 yet

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:notifications_template_add"), form_data())

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Template.objects.filter(key="refund_delayed", channel="sms", locale="en", version=2).count() == 1
    new = render(key="refund_delayed", channel="sms", locale="en", recipient_key="customer:1", context=context)
    assert new.version == 2
    assert new.body == "Order o-1: CNY 199.00 is late. http://x/r/t/"


def test_template_list_has_filters_and_search(admin_client):
    builtin("en")
    url = reverse("admin:notifications_template_changelist")

    assert admin_client.get(url, {"locale": "en", "is_active__exact": "1"}).status_code == 200
    page = admin_client.get(url, {"q": "refund_delayed"}).content.decode()
    assert "refund_delayed" in page


def test_notifications_are_read_only_in_the_admin(admin_client):
    customer = CustomerFactory(phone="+8613812345678", locale="en")
    services.notify(
        recipient=customer,
        template_key="refund_delayed",
        priority="high",
        event_key="refund:1:delayed",
        context={"amount": "¥199.00", "party": "bank", "bank": "工商银行"},
        reference="o-1",
        link="http://x/r/t/",
    )
    sms = Notification.objects.get(channel="sms")

    changelist = admin_client.get(
        reverse("admin:notifications_notification_changelist"), {"status__exact": "queued", "channel__exact": "sms"}
    )
    detail = admin_client.get(reverse("admin:notifications_notification_change", args=[sms.pk]))
    add = admin_client.get(reverse("admin:notifications_notification_add"))
    delete = admin_client.post(reverse("admin:notifications_notification_delete", args=[sms.pk]), {"post": "yes"})

    assert changelist.status_code == 200
    assert "o-1" in changelist.content.decode()
    assert detail.status_code == 200
    assert "+86*******5678" in detail.content.decode()
    assert "13812345678" not in detail.content.decode()
    assert add.status_code == 403
    assert delete.status_code == 403
    assert Notification.objects.count() == 3
