"""Writes to users, tenants and memberships."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _

from accounts.language import in_language_of
from accounts.models import Membership, Role, Tenant, User
from accounts.signals import name_changed
from accounts.tokens import invitation_token
from msc_admin import enqueue


class LastAdminError(ValidationError):
    pass


def invitation_url(user: User) -> str:
    path = reverse(
        "accounts:invite_accept",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": invitation_token.make_token(user),
        },
    )
    return settings.MSC_BASE_URL.rstrip("/") + path


@transaction.atomic
def tenant_create(*, name: str, slug: str, legacy_toutapp: bool) -> Tenant:
    return Tenant.objects.create(name=name, slug=slug, legacy_toutapp=legacy_toutapp)


@transaction.atomic
def tenant_set_legacy(*, tenant: Tenant, legacy_toutapp: bool) -> None:
    """Whether the tenant is a legacy ToutApp one (it may use the shared MSC servers)."""
    Tenant.objects.filter(pk=tenant.pk).update(legacy_toutapp=legacy_toutapp)


@transaction.atomic
def membership_invite(
    *, tenant: Tenant, email: str, role: str, invited_by: User | None
) -> Membership:
    """Create a user with no usable password and their membership, then email the invite link.

    The caller's form has already refused addresses that belong to an existing user.
    """
    user = User.objects.create_user(email=email)
    membership = Membership.objects.create(
        tenant=tenant, user=user, role=role, invited_by=invited_by, invited_at=timezone.now()
    )
    _send_invitation_after_commit(membership.pk)
    return membership


def _send_invitation_after_commit(membership_id: int) -> None:
    from accounts.tasks import send_invitation

    # The language of the request that invites (the inviter's): the invitation is written in it
    # while the invitee has no language of their own.
    enqueue.after_commit(send_invitation, membership_id, translation.get_language() or "")


def membership_send_invitation(*, membership: Membership, language: str = "") -> None:
    """Email the invitation link in the invitee's language; while they have none (they have not
    joined yet), the inviter's own choice, else ``language`` (that of the request that invited
    them), else the site's."""
    user = membership.user
    with in_language_of(user, membership.invited_by, default=language):
        context = {
            "tenant": membership.tenant,
            "role": membership.get_role_display(),
            "inviter": membership.invited_by,
            "url": invitation_url(user),
            "days": settings.PASSWORD_RESET_TIMEOUT // 86400,
        }
        subject = render_to_string("accounts/email/invite_subject.txt", context).strip()
        message = render_to_string("accounts/email/invite_message.txt", context)
    send_mail(subject=subject, message=message, from_email=None, recipient_list=[user.email])


@transaction.atomic
def membership_resend_invitation(*, membership: Membership) -> None:
    if membership.joined_at is not None:
        raise ValidationError(_("This person has already joined."))
    Membership.objects.filter(pk=membership.pk).update(invited_at=timezone.now())
    _send_invitation_after_commit(membership.pk)


@transaction.atomic
def membership_accept_invitation(
    *, user: User, password: str, first_name: str, last_name: str = ""
) -> Membership:
    """The invited person joins: their name and password are set, their address verified."""
    from allauth.account.models import EmailAddress

    password_validation.validate_password(password, user)
    user.set_password(password)
    user.first_name, user.last_name = first_name, last_name
    user.save(update_fields=["password", "first_name", "last_name"])
    membership = Membership.objects.select_for_update().get(user=user)
    membership.joined_at = timezone.now()
    membership.save(update_fields=["joined_at"])
    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )
    return membership


@transaction.atomic
def user_set_name(*, user: User, first_name: str, last_name: str) -> User:
    """Change the person's name; ``name_changed`` tells the apps that show it (their default
    sending identity follows while it still shows the old name)."""
    before = user.get_full_name()
    User.objects.filter(pk=user.pk).update(first_name=first_name, last_name=last_name)
    user.first_name, user.last_name = first_name, last_name
    name_changed.send(sender=User, user=user, before=before)
    return user


@transaction.atomic
def user_set_language(*, user: User, language: str) -> User:
    """The language the person reads the product and their email in ("" for their browser's)."""
    User.objects.filter(pk=user.pk).update(language=language)
    user.language = language
    return user


def _ensure_another_admin(membership: Membership) -> None:
    others = (
        Membership.objects.for_tenant(membership.tenant).admins().active().exclude(pk=membership.pk)
    )
    if not others.exists():
        raise LastAdminError(_("A team needs at least one active tenant admin."))


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str) -> Membership:
    # Lock the tenant's admin rows so two admins demoting each other cannot leave none.
    list(Membership.objects.for_tenant(membership.tenant).admins().select_for_update())
    if membership.role == Role.ADMIN and role != Role.ADMIN:
        _ensure_another_admin(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_set_active(*, membership: Membership, active: bool) -> Membership:
    list(Membership.objects.for_tenant(membership.tenant).admins().select_for_update())
    user = membership.user
    if not active and membership.role == Role.ADMIN:
        _ensure_another_admin(membership)
    # An inactive user is signed out on their next request: ModelBackend.get_user refuses them.
    user.is_active = active
    user.save(update_fields=["is_active"])
    return membership
