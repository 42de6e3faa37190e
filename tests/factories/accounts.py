import factory

from apps.accounts.models import BankAccount, Customer, Merchant, User
from apps.common.crypto import encrypt, fingerprint


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    name = factory.Sequence(lambda n: f"Merchant {n}")


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    merchant = factory.SubFactory(MerchantFactory)
    role = User.Role.OWNER
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-only")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    merchant = factory.SubFactory(MerchantFactory)
    external_id = factory.Sequence(lambda n: f"c-{n}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    phone = "+8613800000000"
    email = factory.Sequence(lambda n: f"c{n}@example.com")


class BankAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BankAccount
        exclude = ("number",)

    merchant = factory.SelfAttribute("customer.merchant")
    customer = factory.SubFactory(CustomerFactory)
    holder_name = factory.SelfAttribute("customer.name")
    bank = "ICBC"
    number = factory.Sequence(lambda n: f"622202{n:06d}0000")
    number_encrypted = factory.LazyAttribute(lambda o: encrypt(o.number))
    last4 = factory.LazyAttribute(lambda o: o.number[-4:])
    fingerprint = factory.LazyAttribute(lambda o: fingerprint(o.number))
