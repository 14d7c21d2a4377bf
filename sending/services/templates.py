"""Templates: save and delete, which merge fields a text may use, and a text rendered for one
recipient."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.utils.translation import gettext, ngettext

from accounts.models import Tenant, User
from channels.models import Identity
from sending import merge
from sending.models import Contact, Template


def template_check(subject: str, body: str) -> None:
    """The one check of a text's merge fields (template form, compose, the API, campaign
    steps): each is complete and known. Raises ``ValidationError`` saying which is not."""
    text = subject + "\n" + body
    if broken := merge.broken_fields(text):
        piece = broken[0]
        raise ValidationError(
            gettext("“%(piece)s” is not a complete merge field: write it as %(suggestion)s.")
            % {"piece": piece, "suggestion": merge.suggestion(piece)}
        )
    unknown = merge.unknown_fields(text)
    if unknown:
        known = ", ".join("{{" + f + "}}" for f in merge.FIELDS)
        raise ValidationError(
            ngettext(
                "Unknown merge field %(unknown)s. Available: %(known)s.",
                "Unknown merge fields %(unknown)s. Available: %(known)s.",
                len(unknown),
            )
            % {"unknown": ", ".join("{{" + u + "}}" for u in unknown), "known": known}
        )


def render_for(
    *,
    subject: str,
    body: str,
    contact: Contact | None,
    to_email: str,
    identity: Identity | None,
    sender: User,
) -> merge.Rendered:
    values = merge.values_for(
        contact,
        email=to_email,
        sender_name=identity.name if identity else sender.get_full_name(),
        sender_email=identity.email if identity else sender.email,
    )
    return merge.render(subject, body, values)


@transaction.atomic
def template_save(*, template: Template, tenant: Tenant, owner: User) -> Template:
    """Store a template made or changed through its form; a new one is ``owner``'s."""
    if template.pk is None:
        template.tenant, template.owner = tenant, owner
    template.save()
    return template


@transaction.atomic
def template_delete(*, template: Template) -> None:
    try:
        template.delete()
    except ProtectedError:  # refused before anything is deleted
        raise ValidationError(
            gettext("“%(name)s” is a step of a campaign; remove it there first.")
            % {"name": template.name}
        ) from None
