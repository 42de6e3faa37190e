"""Encryption at rest for account numbers, and keyed fingerprints to match them without decrypting.

Account numbers are Fernet-encrypted with `FIELD_ENCRYPTION_KEY`; the fingerprint is an
HMAC-SHA256 under a key derived from the same secret, so "the same account used by two customers"
is an index lookup and the plain number never sits in a column.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    return Fernet(key.encode())


def encrypt(plain: str) -> str:
    return _fernet(settings.FIELD_ENCRYPTION_KEY).encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet(settings.FIELD_ENCRYPTION_KEY).decrypt(token.encode()).decode()


def fingerprint(plain: str) -> str:
    key = hashlib.sha256(b"fingerprint:" + settings.FIELD_ENCRYPTION_KEY.encode()).digest()
    return hmac.new(key, plain.encode(), hashlib.sha256).hexdigest()


def mask_account_number(last4: str) -> str:
    """What any screen, log or message may show of an account number (PCI DSS: last four)."""
    return f"**** {last4}"
