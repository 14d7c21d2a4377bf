"""Django's and allauth's words that our pages show (sign-in, password reset, form errors), as
the project's catalogue (``locale/``, searched before theirs) words them: their Spanish says
"usted" ("Introduzca…"), our glossary (``locale/GLOSSARY.md``) says "tú". Marked here so that
``makemessages`` keeps them in the project's catalogue; the Portuguese entries are theirs."""

from __future__ import annotations

from django.utils.translation import gettext_noop

WORDS = [
    gettext_noop("Forgot your password?"),
    gettext_noop("The email address and/or password you specified are not correct."),
    gettext_noop("Too many failed login attempts. Try again later."),
    gettext_noop("Password Reset"),
    gettext_noop(
        "Forgotten your password? Enter your email address below, and we'll send you an email "
        "allowing you to reset it."
    ),
    gettext_noop("Please contact us if you have any trouble resetting your password."),
    gettext_noop("Your password is now changed."),
    gettext_noop("You must type the same password each time."),
    gettext_noop("Successfully signed in as %(name)s."),
    gettext_noop("You have signed out."),
    gettext_noop("Are you sure you want to sign out?"),
    gettext_noop("Enter a valid email address."),
    gettext_noop("Enter a valid value."),
    gettext_noop(
        "Your account is protected by two-factor authentication. Please enter an authenticator "
        "code:"
    ),
]
