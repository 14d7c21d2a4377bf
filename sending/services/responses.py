"""What a recipient did with our mail: complained (marked it as spam), replied, or answered
automatically (out of office). ``bounces`` reads these from the sender's inbox and the ESPs'
events and records each report once; these services apply what it does to the message, its
person's campaign and the suppression list, inside the transaction that recorded it.

Each message is marked once per kind (its first complaint, reply, auto-reply sets the time), by
an ``UPDATE`` of the rows whose time is still empty, under their row locks: two reports of one
message (an ESP's spam report and the ARF copy in the inbox) count it once, even at once.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Case, DateTimeField, Value, When
from django.utils.translation import gettext_noop

from msc_admin.stored import Day, Sentence, sentence
from sending.models import (
    CAMPAIGN_ENDED_COMPLAINT,
    CAMPAIGN_ENDED_REPLY,
    Message,
    MessageStatus,
)
from sending.services.messages import enrollments_end

COMPLAINT = "complaint"
REPLY = "reply"
AUTO_REPLY = "auto_reply"
_FIELDS = {COMPLAINT: "complained_at", REPLY: "replied_at", AUTO_REPLY: "auto_replied_at"}
_ENDS = {COMPLAINT: CAMPAIGN_ENDED_COMPLAINT, REPLY: CAMPAIGN_ENDED_REPLY}


@transaction.atomic
def messages_responded(*, kind: str, at: dict[int, datetime]) -> list[int]:
    """Mark these sent messages as complained about, replied to or auto-replied to (``kind``;
    {pk: when}), each once. A complaint ends the person's campaign as "complained", a reply as
    "replied" (their mail not yet sent is cancelled); an auto-reply ends nothing. Messages that
    were never sent, or were marked so already, are left alone. Returns the pks marked now:
    what the analytics count. Runs inside the transaction that recorded the reports."""
    if not at:
        return []
    field = _FIELDS[kind]
    rows = list(
        Message.objects.select_for_update()
        .filter(
            pk__in=at,
            sent_at__isnull=False,
            status__in=[MessageStatus.SENT, MessageStatus.BOUNCED],
            **{f"{field}__isnull": True},
        )
        .order_by("pk")
        .values_list("pk", "enrollment_id")
    )
    marked = [pk for pk, _ in rows]
    if not marked:
        return []
    when = Case(
        *[When(pk=pk, then=Value(at[pk])) for pk in marked],
        output_field=DateTimeField(),
    )
    Message.objects.filter(pk__in=marked).update(**{field: when})
    if kind in _ENDS:
        enrollments_end(
            enrollment_ids={enrollment for _, enrollment in rows if enrollment},
            reason=_ENDS[kind],
        )
    return marked


def complaint_detail(*, when: datetime, subject: str = "", reported_by: str = "") -> Sentence:
    """ "Marked as spam on 12 Nov, from “Intro”" (", reported by SendGrid"): the suppression's
    words, stored as a sentence (``msc_admin.stored``)."""
    if reported_by and subject:
        text = gettext_noop("Marked as spam, reported by %(by)s on %(day)s, from “%(subject)s”")
    elif reported_by:
        text = gettext_noop("Marked as spam, reported by %(by)s on %(day)s")
    elif subject:
        text = gettext_noop("Marked as spam on %(day)s, from “%(subject)s”")
    else:
        text = gettext_noop("Marked as spam on %(day)s")
    values = {k: v for k, v in {"by": reported_by, "subject": subject}.items() if v}
    return sentence(text, day=Day(when), **values)
