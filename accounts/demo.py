"""Demo tenants, their users and a staff user. Called by ``seed_demo``."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.utils import timezone

from accounts.models import Membership, Role, Tenant, User

DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - documented demo login, refused in production

TENANTS = [("acme", "Acme", False), ("globex", "Globex", True)]
USERS = [
    ("admin@acme.test", "acme", Role.ADMIN, "Ada", "Admin"),
    ("rep@acme.test", "acme", Role.REP, "Rick", "Rep"),
    ("admin@globex.test", "globex", Role.ADMIN, "Gina", "Admin"),
    ("rep@globex.test", "globex", Role.REP, "Greg", "Rep"),
]
STAFF = [("staff@msc.test", "Sam", "Staff")]


def seed_accounts() -> dict[str, Tenant]:
    """Create (or reset) the tenants, their users and the staff user; the tenants by slug."""
    tenants = {}
    for slug, name, legacy in TENANTS:
        tenants[slug], _ = Tenant.objects.update_or_create(
            slug=slug, defaults={"name": name, "legacy_toutapp": legacy}
        )
    for email, slug, role, first, last in USERS:
        user = _user(email, first, last, staff=False)
        Membership.objects.update_or_create(
            user=user,
            defaults={"tenant": tenants[slug], "role": role, "joined_at": timezone.now()},
        )
    for email, first, last in STAFF:
        _user(email, first, last, staff=True)
    return tenants


def _user(email: str, first: str, last: str, *, staff: bool) -> User:
    user, _ = User.objects.update_or_create(
        email=email,
        defaults={
            "first_name": first,
            "last_name": last,
            "is_staff": staff,
            "is_superuser": staff,
            "is_active": True,
        },
    )
    user.set_password(DEMO_PASSWORD)
    user.save(update_fields=["password"])
    EmailAddress.objects.update_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    return user
