from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from apps.accounts.models import AccountFreeze, ApiKey, BankAccount, Customer, Merchant, User
from apps.accounts.services import api_key_revoke


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "is_active", "default_locale", "api_rate_per_minute", "created_at")
    search_fields = ("name",)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "merchant", "role", "is_staff", "is_active")
    list_filter = ("role", "is_staff", "merchant")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Merchant", {"fields": ("merchant", "role", "phone")}))
    add_fieldsets = (*BaseUserAdmin.add_fieldsets, ("Merchant", {"fields": ("merchant", "role")}))


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "merchant", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("merchant",)
    # Revocation goes through `api_key_revoke` (the action below), which records it in the audit log.
    readonly_fields = ("merchant", "prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    exclude = ()
    actions = ("revoke",)

    def has_add_permission(self, request):
        # Keys are issued by `create_merchant` or the console so the raw key can be shown once.
        return False

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=key)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("external_id", "name", "merchant", "locale", "trust_level", "referrer", "created_at")
    list_filter = ("merchant", "locale", "trust_level")
    search_fields = ("external_id", "name", "email", "phone")
    raw_id_fields = ("referrer",)


@admin.register(BankAccount)
class BankAccountAdmin(admin.ModelAdmin):
    list_display = ("id", "merchant", "customer", "holder_name", "bank", "masked_number", "created_at")
    list_filter = ("merchant", "bank")
    # A payee's details are what a request named (G18): another name is another record, not an edit.
    fields = (
        "merchant",
        "customer",
        "holder_name",
        "bank",
        "masked_number",
        "fingerprint",
        "verified_at",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        # Numbers arrive through the API (encrypted on the way in); the admin never holds one in full.
        return False


@admin.register(AccountFreeze)
class AccountFreezeAdmin(admin.ModelAdmin):
    list_display = ("id", "merchant", "customer", "bank_account", "reason", "actor_label", "created_at", "lifted_at")
    list_filter = ("merchant",)
    readonly_fields = ("created_at", "lifted_at", "lifted_by", "actor", "actor_label")
    raw_id_fields = ("customer", "bank_account")
