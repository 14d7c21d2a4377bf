"""API tokens for the plugins' JSON endpoint: stored as a SHA-256 digest, shown once."""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant, User
from sending.models import ApiToken

TOKEN_PREFIX = "msc_"  # noqa: S105 - a prefix, not a secret


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, tenant: Tenant, user: User, name: str) -> tuple[ApiToken, str]:
    """Returns the row and the token itself, which is shown once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        tenant=tenant, user=user, name=name, prefix=token[:10], digest=token_digest(token)
    )
    return row, token


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> None:
    token.delete()


def api_token_used(*, token: ApiToken) -> None:
    """Note when the token was last used (one statement)."""
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
