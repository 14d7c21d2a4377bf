from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from django.http import HttpRequest

from msc_admin.crypto import seal, unseal


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Users join by invitation from their tenant admin (or staff), never by open sign-up.
        return False


class MFAAdapter(DefaultMFAAdapter):
    # TOTP secrets and recovery-code seeds are sealed like every other secret (fail closed).
    def encrypt(self, text: str) -> str:
        return seal(text)

    def decrypt(self, encrypted_text: str) -> str:
        return unseal(encrypted_text)

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        # Tenant admins and staff may not switch off their only second factor while MFA is required.
        from accounts.middleware import user_requires_mfa
        from accounts.models import Membership

        user = authenticator.user
        membership = Membership.objects.filter(user=user).first()
        if authenticator.type == Authenticator.Type.TOTP and user_requires_mfa(user, membership):
            return False
        return super().can_delete_authenticator(authenticator)
