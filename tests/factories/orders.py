import datetime as dt

import factory
from django.utils import timezone

from apps.orders.models import Order, Product, RefundPolicy, UsageEvent
from tests.factories.accounts import CustomerFactory, MerchantFactory


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        skip_postgeneration_save = True

    merchant = factory.SubFactory(MerchantFactory)
    sku = factory.Sequence(lambda n: f"sku-{n}")
    name = factory.Sequence(lambda n: f"Course {n}")
    kind = Product.Kind.COURSE
    price = 19900
    currency = "CNY"
    refund_policy = factory.RelatedFactory("tests.factories.orders.RefundPolicyFactory", factory_related_name="product")


class RefundPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RefundPolicy

    product = None


class OrderFactory(factory.django.DjangoModelFactory):
    """An order row without its ledger capture; use `order_create` when the ledger matters."""

    class Meta:
        model = Order

    merchant = factory.SubFactory(MerchantFactory)
    customer = factory.SubFactory(CustomerFactory, merchant=factory.SelfAttribute("..merchant"))
    product = factory.SubFactory(ProductFactory, merchant=factory.SelfAttribute("..merchant"))
    external_id = factory.Sequence(lambda n: f"o-{n}")
    amount = factory.SelfAttribute("product.price")
    currency = factory.SelfAttribute("product.currency")
    paid_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(minutes=5))
    payment_method = Order.PaymentMethod.CARD
    device_id = "d-1"
    ip = "203.0.113.5"


class UsageEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageEvent

    order = factory.SubFactory(OrderFactory)
    kind = UsageEvent.Kind.PROGRESS
    value = 5
