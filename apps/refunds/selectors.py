from apps.accounts.models import Merchant
from apps.refunds.models import Refund


def refund_list_for_merchant(*, merchant: Merchant):
    return (
        Refund.objects.filter(merchant=merchant)
        .select_related("order", "customer", "destination_account")
        .order_by("-id")
    )
