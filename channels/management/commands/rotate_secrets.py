"""Re-encrypt every stored secret under the newest key of MSC_SECRET_KEYS.

Resumable and idempotent: rows are rotated in small committed batches and rows already under the
newest key are skipped, so an interrupted run is simply started again. A row that cannot be
decrypted (unknown key, tampered) is reported and left as it is: it fails closed either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from allauth.mfa.models import Authenticator
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import Model, Q
from django.template.defaultfilters import pluralize

from channels.models import Channel, MscServer
from msc_admin.crypto import PREFIX, SecretUnavailable, keyring, needs_rotation, reseal

MFA_FIELDS = ("secret", "seed")  # allauth: TOTP secret, recovery-codes seed


def _rotate_secret_field(row: Channel | MscServer) -> bool:
    """Channels and the MSC server pool keep one sealed value in ``secret``."""
    if not needs_rotation(row.secret):
        return False
    row.secret = reseal(row.secret)
    row.save(update_fields=["secret"])
    return True


def _rotate_authenticator(authenticator: Authenticator) -> bool:
    data = dict(authenticator.data)
    changed = False
    for key in MFA_FIELDS:
        value = data.get(key)
        if isinstance(value, str) and needs_rotation(value):
            data[key] = reseal(value)
            changed = True
    if changed:
        authenticator.data = data
        authenticator.save(update_fields=["data"])
    return changed


class Command(BaseCommand):
    help = (
        "Re-encrypt stored secrets (SMTP passwords, OAuth tokens, MSC server passwords, MFA) "
        "under the newest key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=200)

    def handle(self, *args: Any, batch_size: int = 200, **options: Any) -> None:
        newest = keyring().newest
        current = f"{PREFIX}:{newest}:"
        jobs: list[tuple[str, Any, Callable[[Any], bool]]] = [
            (
                "channel secrets",
                Channel.objects.exclude(secret="").exclude(secret__startswith=current),
                _rotate_secret_field,
            ),
            (
                "MSC server passwords",
                MscServer.objects.exclude(secret="").exclude(secret__startswith=current),
                _rotate_secret_field,
            ),
            ("MFA authenticators", Authenticator.objects.all(), _rotate_authenticator),
        ]
        failed = 0
        for label, queryset, rotate in jobs:
            rotated = seen = 0
            for batch in _batches(queryset, batch_size):
                with transaction.atomic():
                    for row in queryset.model._default_manager.select_for_update().filter(
                        pk__in=[r.pk for r in batch]
                    ):
                        seen += 1
                        try:
                            rotated += rotate(row)
                        except SecretUnavailable as problem:
                            failed += 1
                            self.stderr.write(f"  {label} #{row.pk}: {problem}; left unchanged")
                self.stdout.write(f"  {label}: {seen} checked, {rotated} re-encrypted…")
            self.stdout.write(
                f"{label}: {rotated} re-encrypted under key {newest!r} ({seen} checked)"
            )
        if failed:
            self.stderr.write(
                self.style.WARNING(f"{failed} secret{pluralize(failed)} could not be decrypted.")
            )
        else:
            self.stdout.write(self.style.SUCCESS("Every stored secret is under the newest key."))


def _batches(queryset: Any, size: int) -> Iterator[list[Model]]:
    last = 0
    while True:
        batch = list(queryset.filter(Q(pk__gt=last)).order_by("pk")[:size])
        if not batch:
            return
        yield batch
        last = batch[-1].pk
