"""Standard Webhooks key handling, shared by verification (SQL) and the sample signer.

Verification runs as vectorised SQL, so HMAC-SHA256 is composed from two SHA-256
passes: ``H((K ^ opad) || H((K ^ ipad) || m))`` (RFC 2104). The padded keys are
derived here once per secret, and only ever handed to the engine as bound data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
BLOCK = 64  # SHA-256 block size


class SecretFormatError(ValueError):
    """A configured secret is unusable. The message never contains the secret."""


def decode_secret(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise SecretFormatError("secret does not start with 'whsec_'")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise SecretFormatError("secret is not valid base64 after 'whsec_'") from None
    if not key:
        raise SecretFormatError("secret decodes to an empty key")
    return key


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """(K ^ ipad, K ^ opad) for HMAC-SHA256, the key first hashed if longer than a block."""
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\x00")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def sign(secret: str, webhook_id: str, timestamp: int | str, body: str) -> str:
    """The `webhook-signature` header value for one message (used by the sample and tests)."""
    content = f"{webhook_id}.{timestamp}.{body}".encode()
    digest = hmac.new(decode_secret(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
