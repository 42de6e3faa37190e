"""The one thing a progress link lets a customer write: a new receiving account for a refund that
needs it. Errors are gettext strings, shown in the page's language."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.common.crypto import fingerprint


class AccountChangeForm(forms.Form):
    holder_name = forms.CharField(label=_("Account holder name"), max_length=100, strip=True)
    bank = forms.CharField(label=_("Bank"), max_length=50, strip=True)
    account_number = forms.CharField(
        label=_("Account number"),
        max_length=40,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )

    def __init__(self, *args, current_account=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.current_account = current_account

    def clean_account_number(self) -> str:
        # Same rule as apps.accounts.services.bank_account_get_or_create: ASCII digits, 8–30 of them
        # (spaces as people type them are dropped).
        digits = self.cleaned_data["account_number"].replace(" ", "").replace("-", "")
        if not (digits.isascii() and digits.isdigit()) or not 8 <= len(digits) <= 30:
            raise forms.ValidationError(_("Enter the account number as 8 to 30 digits."), code="invalid")
        return digits

    def clean(self):
        cleaned = super().clean()
        current = self.current_account
        number, holder = cleaned.get("account_number"), cleaned.get("holder_name")
        if current is not None and number and holder:
            same_number = fingerprint(number) == current.fingerprint
            if same_number and holder == current.holder_name:
                raise forms.ValidationError(
                    _("This is the account the bank refused. Please enter a different account."), code="same_account"
                )
        return cleaned

    def account(self) -> dict:
        return {key: self.cleaned_data[key] for key in ("holder_name", "bank", "account_number")}
