from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from django.http import HttpRequest
from django.utils import translation

from accounts.language import in_language_of, language_of
from msc_admin.crypto import seal, unseal


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Users join by invitation from their tenant admin (or staff), never by open sign-up.
        return False

    def add_message(
        self,
        request: HttpRequest,
        level: int,
        message_template: str | None = None,
        message_context: dict[str, Any] | None = None,
        extra_tags: str = "",
        message: str | None = None,
    ) -> None:
        """allauth's messages in the language of the person signed in (their own choice): the
        request began signed out, in the browser's language, when it signs someone in."""
        user = getattr(request, "user", None)
        own = language_of(user) if user is not None and user.is_authenticated else ""
        with translation.override(own or translation.get_language()):
            super().add_message(
                request, level, message_template, message_context, extra_tags, message
            )

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """allauth's emails (password reset, notices) in the recipient's language: their own
        choice, else the language of the page that caused the email (their browser's)."""
        with in_language_of(email, default=translation.get_language()):
            super().send_mail(template_prefix, email, context)


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
