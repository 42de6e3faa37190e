"""Admin: templates are edited (and previewed) here; notifications are a read-only record.

A template body that does not compile is refused on save, and every save or delete drops the
cached template table so the new wording is used within `rendering.TEMPLATE_CACHE_SECONDS`.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.html import format_html, format_html_join

from apps.accounts.models import Locale
from apps.common.admin import ReadOnlyAdmin
from apps.notifications.api import mask_address
from apps.notifications.models import Notification, Preference, ProviderStatusEvent, SandboxMessage, Template
from apps.notifications.rendering import RenderError, mask_card_numbers, render_text
from apps.notifications.services import template_delete, template_save

# One value for every variable apps.notifications.defaults documents, per locale, so the preview
# shows each branch of a template the way a customer would read it.
_COMMON_SAMPLE = {
    "reference": "o-20261127-001",
    "link": "https://refundguard.example/r/sample-token/",
    "account_last4": "0002",
    "appeal_link": "https://refundguard.example/r/sample-token/#appeal",
    "change_account_link": "https://refundguard.example/r/sample-token/#account",
    "support_phone": "400-800-1234",
    "support_link": "https://refundguard.example/support/",
    "count": 3,
}
SAMPLE_CONTEXT: dict[str, dict] = {
    Locale.ZH_HANS: {
        **_COMMON_SAMPLE,
        "amount": "¥199.00",
        "bank": "工商银行",
        "eta": "11月30日",
        "party": "bank",
        "reason": "收款账户信息有误,请更换收款账户。",
        "compensation": "一张10元无门槛优惠券",
        "explanation": "该订单已使用超过50%,不符合自动退款条件。",
        "guidance": "请上传付款截图。",
        "materials": "付款截图、身份证明",
        "summary": "3笔退款延迟",
    },
    Locale.EN: {
        **_COMMON_SAMPLE,
        "amount": "CNY 199.00",
        "bank": "ICBC",
        "eta": "30 Nov",
        "party": "bank",
        "reason": "The receiving account details are wrong; please change the account.",
        "compensation": "a CNY 10 coupon with no minimum spend",
        "explanation": "More than 50% of the course was used, so the refund is not automatic.",
        "guidance": "Please upload a screenshot of the payment.",
        "materials": "payment screenshot, proof of identity",
        "summary": "3 refunds are delayed",
    },
}
# The preview renders once per responsible party: templates branch on it.
PREVIEW_PARTIES = ("bank", "platform", "customer", "merchant")


def sample_context(locale: str, **overrides) -> dict:
    return {**SAMPLE_CONTEXT.get(locale, SAMPLE_CONTEXT[Locale.EN]), **overrides}


def render_preview(*, subject: str, body: str, locale: str) -> list[tuple[str, str, str]]:
    """(party, title, body) for each party, rendered from the sample context and masked as a
    recipient would get it. Raises RenderError for a template that does not compile or render."""
    out = []
    parties = PREVIEW_PARTIES if "party" in subject + body else (SAMPLE_CONTEXT[Locale.EN]["party"],)
    for party in parties:
        context = sample_context(locale, party=party)
        keep = (context["reference"],)
        out.append(
            (
                party,
                mask_card_numbers(render_text(subject, context), keep=keep),
                mask_card_numbers(render_text(body, context), keep=keep),
            )
        )
    return out


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = ("key", "channel", "locale", "version", "subject", "body", "rollout_percent", "is_active")

    def clean(self):
        cleaned = super().clean()
        locale = cleaned.get("locale") or Locale.EN
        for field in ("subject", "body"):
            source = cleaned.get(field)
            if not source:
                continue
            try:
                render_text(source, sample_context(locale))
            except RenderError as exc:
                self.add_error(field, f"This template does not compile: {exc}")
        return cleaned


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    form = TemplateForm
    list_display = ("key", "channel", "locale", "version", "rollout_percent", "is_active", "updated_at")
    list_filter = ("is_active", "locale", "channel", "key")
    search_fields = ("key", "subject", "body")
    ordering = ("key", "channel", "locale", "-version")
    readonly_fields = ("preview", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("key", "channel", "locale", "version", "rollout_percent", "is_active")}),
        ("Wording", {"fields": ("subject", "body")}),
        ("Preview with sample values", {"fields": ("preview",)}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="Preview")
    def preview(self, obj: Template | None) -> str:
        if obj is None or not obj.body:
            return "Save the template to see a preview."
        try:
            rendered = render_preview(subject=obj.subject, body=obj.body, locale=obj.locale)
        except RenderError as exc:
            return format_html('<p class="errornote">This template does not render: {}</p>', str(exc))
        variables = format_html_join(", ", "<code>{}</code>={}", sorted(sample_context(obj.locale).items()))
        rows = format_html_join(
            "",
            '<div class="template-preview"><strong>party={}</strong><p>{}</p>'
            '<pre style="white-space:pre-wrap">{}</pre></div>',
            rendered,
        )
        return format_html("{}<p class='help'>Sample values: {}</p>", rows, variables)

    def save_model(self, request, obj, form, change):
        before = {name: form.initial.get(name) for name in form.changed_data} if change else None
        template_save(template=obj, before=before)

    def delete_model(self, request, obj):
        template_delete(template=obj)

    def delete_queryset(self, request, queryset):
        for template in queryset:
            template_delete(template=template)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "recipient_type",
        "recipient_key",
        "channel",
        "priority",
        "template_key",
        "reference",
        "status",
        "attempts",
    )
    list_filter = ("status", "channel", "priority", "recipient_type", "template_key")
    search_fields = ("reference", "event_key", "provider_id", "recipient_key")
    date_hierarchy = "created_at"
    # The full address and the rendering context stay out of the admin: a masked address identifies
    # the number or mailbox well enough to answer a customer.
    readonly_fields = [
        "masked_address" if f.name == "address" else f.name for f in Notification._meta.fields if f.name != "context"
    ]
    exclude = ("address", "context")

    @admin.display(description="Address")
    def masked_address(self, obj: Notification) -> str:
        return mask_address(obj.address)


@admin.register(Preference)
class PreferenceAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "customer",
        "user",
        "disabled_channels",
        "quiet_start",
        "quiet_end",
        "time_zone",
        "updated_at",
    )
    search_fields = ("customer__external_id", "user__username")
    raw_id_fields = ("customer", "user")
    readonly_fields = ("updated_at",)


@admin.register(SandboxMessage)
class SandboxMessageAdmin(ReadOnlyAdmin):
    """What the sandbox "sent" while no Twilio credentials are set: the phone a developer reads."""

    list_display = ("created_at", "channel", "to", "body", "sid", "notification_id")
    list_filter = ("channel",)
    search_fields = ("to", "sid", "notification_id")


@admin.register(ProviderStatusEvent)
class ProviderStatusEventAdmin(ReadOnlyAdmin):
    """Delivery reports as they came (Twilio status callbacks), once per sid + status."""

    list_display = ("received_at", "provider", "provider_id", "status", "notification")
    list_filter = ("provider", "status")
    search_fields = ("provider_id",)
