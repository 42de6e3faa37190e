from django.contrib import admin

from apps.orders.models import Order, Product, RefundPolicy, UsageEvent


class RefundPolicyInline(admin.StackedInline):
    model = RefundPolicy
    can_delete = False


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "kind", "price", "currency", "merchant", "is_active")
    list_filter = ("merchant", "kind", "currency")
    search_fields = ("sku", "name")
    inlines = [RefundPolicyInline]


class UsageEventInline(admin.TabularInline):
    model = UsageEvent
    extra = 0
    readonly_fields = ("kind", "value", "occurred_at", "created_at")
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("external_id", "merchant", "customer", "product", "amount", "currency", "paid_at")
    list_filter = ("merchant", "payment_method", "currency")
    search_fields = ("external_id", "device_id", "ip")
    raw_id_fields = ("customer", "product", "referrer", "payer_account")
    inlines = [UsageEventInline]

    def get_readonly_fields(self, request, obj=None):
        # A captured order's money fields are history: changing them would desync the ledger.
        if obj is not None:
            return ("merchant", "customer", "product", "amount", "currency", "paid_at", "payer_account")
        return ()

    def has_add_permission(self, request):
        return False
