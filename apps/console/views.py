from django.contrib.auth.decorators import login_required
from django.db.models import Count, Sum
from django.shortcuts import render

from apps.accounts.models import Customer
from apps.orders.models import Order, Product


@login_required
def dashboard(request):
    """The merchant console's front page: what this merchant has, nothing of anyone else's."""
    merchant = request.user.merchant
    if merchant is None:
        return render(request, "console/no_merchant.html", status=403)
    orders = Order.objects.filter(merchant=merchant)
    totals = orders.values("currency").annotate(count=Count("id"), amount=Sum("amount")).order_by("currency")
    context = {
        "merchant": merchant,
        "customer_count": Customer.objects.filter(merchant=merchant).count(),
        "product_count": Product.objects.filter(merchant=merchant).count(),
        "order_totals": totals,
        "recent_orders": orders.select_related("customer", "product").order_by("-paid_at")[:10],
    }
    return render(request, "console/dashboard.html", context)
