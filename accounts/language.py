"""The language a person reads the product in, and the one to write to them in.

``User.language`` holds a code of ``settings.LANGUAGES`` ("en", "pt-br", "es"), or "" for "my
browser's". Pages: ``accounts.middleware.UserLanguageMiddleware`` activates a signed-in person's
own choice; otherwise Django's ``LocaleMiddleware`` has already picked the browser's (the
language cookie that ``set_language`` writes, then Accept-Language).

Emails have no browser to ask, and Celery tasks no request: whatever sends one renders its
subject and body inside ``in_language_of``::

    with in_language_of(recipient):
        send_mail(subject=gettext("…"), message=render_to_string("…", context), …)

``in_language_of(*people, default=…)`` takes users or email addresses, first the recipient and
then who may stand in for them: the first one with a language of their own wins. When nobody
has one, ``default`` (a language code the caller captured from the request that caused the
email, e.g. ``translation.get_language()`` handed to the task), else the site's
``LANGUAGE_CODE``. An invitee has no choice of their own yet: their invitation is written in
the inviter's language (``accounts.tasks.send_invitation``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from accounts.models import User

# "Browser's language", then each language named in itself (someone who cannot read the page's
# language still finds theirs).
BROWSER = ""
CHOICES = [(BROWSER, _("Browser's language")), *settings.LANGUAGES]


def supported(code: str | None) -> str:
    """``code`` as one of ``settings.LANGUAGES`` ("pt-BR" → "pt-br"), or "" if none fits."""
    if not code:
        return ""
    try:
        return translation.get_supported_language_variant(code.lower())
    except LookupError:
        return ""


def language_of(person: User | str | None) -> str:
    """The language a person chose (a user or an address; "" when they did not, or have no
    account)."""
    from accounts.models import User

    if person is None or person == "":
        return ""
    if isinstance(person, str):
        person = User.objects.filter(email__iexact=person.strip()).only("language").first()
        if person is None:
            return ""
    return supported(person.language)


def language_for(*people: User | str | None, default: str | None = None) -> str:
    """The first language of their own among ``people``, else ``default``, else the site's."""
    for person in people:
        if code := language_of(person):
            return code
    return supported(default) or supported(settings.LANGUAGE_CODE) or settings.LANGUAGE_CODE


@contextmanager
def in_language_of(*people: User | str | None, default: str | None = None) -> Iterator[str]:
    """Render what is written to ``people[0]`` in their language (see the module's docstring);
    yields the language code used."""
    code = language_for(*people, default=default)
    with translation.override(code):
        yield code
