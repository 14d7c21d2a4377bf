"""Secrets at rest: a versioned envelope that names its key.

    enc1:<key id>:<Fernet token>

Keys come from the environment (``MSC_SECRET_KEYS``, newest first), never from the database.
Decryption fails closed: an unknown key id, a tampered token or a value that is not an envelope
raises ``SecretUnavailable``; nothing ever falls back to treating stored text as plaintext.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

PREFIX = "enc1"


class SecretUnavailable(Exception):
    """A stored secret could not be decrypted. The message never contains the secret."""


@dataclass(frozen=True)
class Keyring:
    newest: str
    keys: dict[str, Fernet]


def parse_keys(raw: str) -> list[tuple[str, str]]:
    """``kid:base64key,kid:base64key`` (newest first) into pairs, validating each key."""
    pairs = []
    for item in raw.split(","):
        kid, sep, key = item.strip().partition(":")
        if not sep or not kid or not kid.isalnum() or len(kid) > 16:
            raise ImproperlyConfigured(
                "MSC_SECRET_KEYS must look like 'k2:<key>,k1:<key>' (key ids: letters and digits)"
            )
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"MSC_SECRET_KEYS key {kid!r} is not a url-safe base64 32-byte key "
                "(make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            ) from None
        pairs.append((kid, key))
    if len({kid for kid, _ in pairs}) != len(pairs):
        raise ImproperlyConfigured("MSC_SECRET_KEYS names a key id twice")
    return pairs


def dev_key_from(secret_key: str) -> str:
    digest = hashlib.sha256(b"msc-admin dev secrets|" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


@cache
def _keyring(config: tuple[tuple[str, str], ...]) -> Keyring:
    return Keyring(newest=config[0][0], keys={kid: Fernet(key.encode()) for kid, key in config})


def keyring() -> Keyring:
    return _keyring(tuple(tuple(pair) for pair in settings.MSC_SECRET_KEYS))


@sensitive_variables("plaintext")
def seal(plaintext: str) -> str:
    ring = keyring()
    token = ring.keys[ring.newest].encrypt(plaintext.encode()).decode()
    return f"{PREFIX}:{ring.newest}:{token}"


def key_id(envelope: str) -> str | None:
    parts = envelope.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == PREFIX else None


def unseal(envelope: str) -> str:
    kid = key_id(envelope)
    if kid is None:
        raise SecretUnavailable("stored secret is not in the expected format")
    fernet = keyring().keys.get(kid)
    if fernet is None:
        raise SecretUnavailable(f"stored secret uses key {kid!r}, which is not configured")
    try:
        return fernet.decrypt(envelope.split(":", 2)[2].encode()).decode()
    except InvalidToken:
        raise SecretUnavailable("stored secret failed its integrity check") from None


def needs_rotation(envelope: str) -> bool:
    return bool(envelope) and key_id(envelope) != keyring().newest


def reseal(envelope: str) -> str:
    return seal(unseal(envelope))
