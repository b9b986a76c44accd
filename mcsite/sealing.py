"""Secrets at rest (RCON passwords, backup passwords and keys) are sealed with
a key derived from MCSITE_SECRET_KEY, so a copy of the database alone does not
reveal them. Fernet is fine here: these are short strings, not streams."""

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def _fernet() -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mcsite sealed secrets v1").derive(
        settings.SECRET_KEY.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def unseal(token: str) -> str:
    """The secret back; '' when nothing is stored. Raises ValueError when the
    token was sealed under another MCSITE_SECRET_KEY."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("stored secret cannot be unsealed: was MCSITE_SECRET_KEY changed?") from None
