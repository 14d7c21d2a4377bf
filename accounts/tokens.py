from __future__ import annotations

from django.contrib.auth.tokens import PasswordResetTokenGenerator


class InvitationTokenGenerator(PasswordResetTokenGenerator):
    """One-use invitation links.

    The hash covers the password and last login (as Django's reset tokens do), so the link stops
    working once the invitee has set a password. A distinct salt keeps invitation and reset
    tokens from standing in for each other. Lifetime: ``PASSWORD_RESET_TIMEOUT``.
    """

    key_salt = "accounts.tokens.InvitationTokenGenerator"


invitation_token = InvitationTokenGenerator()
