"""Users, tenants and memberships.

A tenant is a customer company. Every row of customer data carries a ``tenant`` foreign key
(see ``TenantOwned``) and is read through ``for_tenant``; the request's tenant is resolved in
exactly one place, ``accounts.middleware.TenantMiddleware``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **extra)


class User(AbstractUser):
    """A person who signs in with an email address. ``is_staff`` marks platform staff."""

    username = None  # type: ignore[assignment]
    # Stored lower-cased (save() and the manager normalise), so a plain unique index is enough.
    email = models.EmailField(_("email address"), unique=True)
    # The language this person reads the product in (a code from settings.LANGUAGES); blank
    # means their browser's. Emails to them are written in it too.
    language = models.CharField(max_length=10, blank=True, default="")

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = self.email.strip().lower()
        super().save(*args, **kwargs)


class Tenant(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    legacy_toutapp = models.BooleanField(
        _("legacy ToutApp"),
        default=False,
        help_text=_("Legacy ToutApp tenants may use the shared MSC server pool."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TenantQuerySet(models.QuerySet[Any]):
    def for_tenant(self, tenant: Tenant) -> Self:
        return self.filter(tenant=tenant)


class TenantOwned(models.Model):
    """Base for every model holding customer data.

    Each concrete model declares ``objects`` from a subclass of ``TenantQuerySet``, so that
    ``Model.objects.for_tenant(request.tenant)`` is how views read it.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True


class Role(models.TextChoices):
    ADMIN = "admin", _("Tenant admin")
    REP = "rep", _("Rep")


class MembershipQuerySet(TenantQuerySet):
    def active(self) -> Self:
        return self.filter(user__is_active=True)

    def admins(self) -> Self:
        return self.filter(role=Role.ADMIN)


class Membership(TenantOwned):
    """A user's place in a tenant. A user belongs to at most one tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="membership")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.REP)
    invited_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    invited_at = models.DateTimeField(null=True, blank=True)
    joined_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["user__email"]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.get_role_display()})"

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def status(self) -> str:
        if not self.user.is_active:
            return "deactivated"
        if self.joined_at is None:
            return "invited"
        return "active"
