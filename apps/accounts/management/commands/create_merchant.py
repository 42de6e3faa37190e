from django.core.management.base import BaseCommand

from apps.accounts.services import merchant_create


class Command(BaseCommand):
    help = "Create a merchant and print its new API key (the key is the only line on stdout)."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name: str, **options):
        merchant, raw_key = merchant_create(name=name)
        self.stderr.write(f"created merchant {merchant.pk} ({merchant.name}); store the key now, it is not kept")
        self.stdout.write(raw_key)
