from tests.factories.accounts import (
    BankAccountFactory,
    CustomerFactory,
    MerchantFactory,
    StaffFactory,
)
from tests.factories.orders import OrderFactory, ProductFactory, UsageEventFactory

__all__ = [
    "BankAccountFactory",
    "CustomerFactory",
    "MerchantFactory",
    "OrderFactory",
    "ProductFactory",
    "StaffFactory",
    "UsageEventFactory",
]
