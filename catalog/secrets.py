"""Encryption of credentials at rest (Fernet: AES-128-CBC with an HMAC, from ``cryptography``).

The key is ``STUDIO_CREDENTIAL_KEY`` (a Fernet key) when set, else derived from ``SECRET_KEY``
with HKDF, so a fresh install works and a leaked database alone reveals no secret. Rotating
``SECRET_KEY`` without setting ``STUDIO_CREDENTIAL_KEY`` makes stored credentials unreadable:
``decrypt`` then says so instead of returning garbage.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class CredentialUnreadable(Exception):
    """The stored secret cannot be decrypted with the current key."""


@functools.cache
def _fernet(secret_key: str, credential_key: str) -> Fernet:
    if credential_key:
        return Fernet(credential_key.encode())
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"studio credentials"
    ).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _current() -> Fernet:
    return _fernet(settings.SECRET_KEY, settings.STUDIO_CREDENTIAL_KEY)


def encrypt(secret: str) -> bytes:
    return _current().encrypt(secret.encode())


def decrypt(ciphertext: bytes | memoryview) -> str:
    try:
        return _current().decrypt(bytes(ciphertext)).decode()
    except InvalidToken:
        raise CredentialUnreadable(
            "the credential cannot be decrypted: was SECRET_KEY or STUDIO_CREDENTIAL_KEY changed?"
        ) from None
