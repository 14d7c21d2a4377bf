"""What a channel kind is: everything that differs between Gmail, Exchange, custom SMTP and the
legacy MSC servers, asked of ``channel.kind_spec`` instead of branching on the stored value.

A kind module imports ``channels.transports.smtp`` / ``exchange`` / ``graph``, OAuth and the
models inside the methods that use them: those import ``channels.kinds.config``, which loads the
registry (and so every kind module) first, whichever of them Python meets first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from channels.kinds.config import ChannelKind, Config
from channels.transports import AUTH, RETRY, SendFailure
from channels.transports.deadline import Deadline
from channels.transports.deadline import session as bounded_session
from msc_admin.crypto import SecretUnavailable
from msc_admin.stored import sentence

if TYPE_CHECKING:
    from django import forms
    from django_stubs_ext import StrOrPromise

    from channels.models import Channel
    from channels.transports import Handover
    from channels.transports.smtp import ConnectionReport


@dataclass(frozen=True)
class Card:
    """A kind as the settings pages explain it: one card of the support matrix."""

    key: str
    name: StrOrPromise
    summary: StrOrPromise
    authentication: StrOrPromise  # who owns SPF/DKIM
    throttling: StrOrPromise
    bounce_tracking: StrOrPromise
    recommended: bool = False
    legacy_only: bool = False
    selectable: bool = True
    warning: StrOrPromise = ""


@dataclass(frozen=True)
class Rule:
    """A sending limit: a window of ``seconds`` that admits ``limit`` sends (``sending.quota``
    enforces it). *Batch* windows start with the first send of a batch, *aligned* ones (per
    second, minute, UTC day) at multiples of their length, and *rolling* ones are the last
    ``seconds`` before each send, as Gmail and Exchange Online count their daily limits: a send
    frees its slot exactly ``seconds`` after it was taken."""

    name: str  # batch / second / minute / hour / day
    limit: int
    seconds: int
    aligned: bool
    label: str
    rolling: bool = False

    def window_start(self, now: float) -> float:
        return math.floor(now / self.seconds) * self.seconds if self.aligned else now


def rolling(name: str, limit: int, seconds: int, label: str) -> Rule:
    """A limit counted over the last ``seconds`` before each send."""
    return Rule(name, limit, seconds, False, label, rolling=True)


DAY = 86_400
NOT_THROTTLED = _("Not throttled: team throttling is off and no daily limit is set.")


class Kind:
    """One kind of channel. Subclasses set what differs; the defaults are "not this kind's"."""

    value: ChannelKind
    card: Card
    # The staff console's short name (a key of its channel mix, so plain English); kinds may
    # share one ("Exchange").
    staff_label: str
    overview_template: str  # its card on Delivery channels, with ``kind`` and ``channel``
    settings_type: type[Config] | None = None  # the typed ``Channel.config``
    form: type[forms.Form] | None = None  # the settings form, when the user types settings in
    oauth_provider: str = ""  # allauth provider id, for a mailbox connected by OAuth consent
    email_connection: bool = False  # the team's throttling applies to it
    connection_test: bool = False  # "Test connection" runs a real handshake
    scans_inbox: bool = False  # bounces are read from the mailbox
    # The provider API the mailbox is read through by default (``bounces.reading``), e.g. "the
    # Gmail API"; "" when it is read by IMAP only. Its tenant admin may choose IMAP instead.
    reading_api: StrOrPromise = ""
    ews_inbox: bool = False  # read through EWS with the stored password (``bounces.ews``)
    imap_setting: str = ""  # the setting holding the IMAP host:port (IMAP reading)
    esp_webhooks: bool = False  # an ESP's event webhook can report its bounces
    plugin: str = ""  # the plugin (``routing.Source``) that always sends through this kind
    retired_label: StrOrPromise = ""  # its name once disabled by a move off legacy
    # Its name before a detail: "Gmail (rep@acme.test)"; else ``label``.
    short_label: StrOrPromise = ""
    not_throttled: StrOrPromise = NOT_THROTTLED  # why the Outbox shows no limit for it
    # What the Outbox calls mail held by its "day" limit: a rolling window unless it is not.
    day_limit_label: StrOrPromise = _("24-hour limit")
    trial_accounts: bool = False  # a mailbox can be marked a trial account (lower limits)
    # It sends only as its own address and the aliases its provider lists (``send_as``).
    restricts_senders: bool = False
    # Its sending domains' SPF, DKIM, DMARC and MX are looked up (``channels.domaincheck``):
    # mail leaves through a relay the customer's DNS must authorise (``relay_host``).
    domain_check: bool = False

    @property
    def label(self) -> str:
        return str(self.value.label)

    @property
    def legacy_only(self) -> bool:
        """Offered to legacy ToutApp tenants only, and never shown to a modern one."""
        return self.card.legacy_only

    def __str__(self) -> str:
        return self.label

    def __repr__(self) -> str:
        return f"<Kind {self.value}>"

    def label_detail(self, channel: Channel) -> str:
        """What tells this channel apart in its label (after the kind's name)."""
        return channel.account_email

    def edit_url(self, channel: Channel) -> str:
        """Where its settings are re-entered ("" when there is nothing to type in)."""
        return ""

    def limits(self, channel: Channel) -> list[Rule]:
        """The provider's own limits: they apply whether or not the team throttles."""
        return []

    def provider(self, channel: Channel) -> str:
        """Who pushes back when this channel sends too much, as the Outbox names it."""
        return self.label

    def relay_host(self, channel: Channel) -> str:
        """The server that hands this channel's mail to the world (``domain_check`` kinds)."""
        return ""

    def extra_headers(self, channel: Channel, token: str) -> list[tuple[str, str]]:
        """Headers added to each message for the provider (``token`` is our message token)."""
        return []

    def imap_address(self) -> tuple[str, int]:
        return host_port(getattr(settings, self.imap_setting), 993)

    def check_connection(self, channel: Channel, password: str) -> ConnectionReport:
        """The real handshake behind "Test connection" (``connection_test`` kinds only)."""
        raise NotImplementedError(f"{self.label} has no connection test")

    def deliver(
        self, channel: Channel, *, sender: str, recipient: str, data: bytes, on_handover: Handover
    ) -> str:
        """Hand one MIME message over; every failure is a ``SendFailure``. Returns the
        server's answer."""
        raise NotImplementedError

    def send_as(self, channel: Channel) -> list[str]:
        """The addresses the provider says the mailbox may send as, lower-cased (its own
        included), for ``restricts_senders`` kinds; raises ``SendAsUnavailable`` saying why
        not."""
        raise NotImplementedError(f"{self.label} does not list send-as addresses")


class SendAsUnavailable(Exception):
    """The provider's list of send-as addresses could not be read; the words say why."""


def provider_json(url: str, *, token: str, who: str) -> dict[str, Any]:
    """GET a provider's JSON answer with an access token, within the outbound deadline, or
    ``SendAsUnavailable`` saying what went wrong."""
    deadline = Deadline()
    try:
        with bounded_session(deadline) as session:
            response = session.get(
                url,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=deadline.timeout(),
                allow_redirects=False,
            )
            response.content  # noqa: B018 - read the body inside the deadline
    except (requests.RequestException, OSError) as error:
        why = deadline.missed(who) if deadline.expired else error.__class__.__name__
        raise SendAsUnavailable(f"{who} could not be reached ({why}).") from None
    if response.status_code != 200:
        raise SendAsUnavailable(f"{who} answered {response.status_code} {response.reason}.")
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise SendAsUnavailable(f"{who} answered something other than the expected JSON.")
    return answer


def oauth_token_for_reading(channel: Channel) -> str:
    """An access token to read the mailbox's settings, or ``SendAsUnavailable`` saying why
    not."""
    try:
        return access_token(channel)
    except SendFailure as failure:
        raise SendAsUnavailable(failure.text) from None


def host_port(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":") if ":" in value else (value, "", "")
    return host, int(port) if port else default_port


def stored_password(channel: Channel) -> str:
    try:
        return str(channel.read_secret().get("password", ""))
    except SecretUnavailable:
        raise SendFailure(
            AUTH, "The stored password cannot be decrypted. Enter it again and save."
        ) from None


def access_token(channel: Channel) -> str:
    """A fresh OAuth access token for sending, or the ``SendFailure`` that says why not."""
    from channels.oauth import (
        OAuthNotConfigured,
        OAuthRevoked,
        fresh_access_token,
        refresh_problem,
    )

    try:
        return fresh_access_token(channel.pk)
    except OAuthRevoked as revoked:
        raise SendFailure(AUTH, revoked.text) from None
    except OAuthNotConfigured as missing:
        # The server's configuration, not the user's grant: tried again later, channel unmarked.
        raise SendFailure(RETRY, str(missing)) from None
    except SecretUnavailable:
        # A sentence (``msc_admin.stored``): it becomes the channel's status message.
        text = sentence(gettext_noop("The stored tokens cannot be decrypted; reconnect."))
        raise SendFailure(AUTH, text) from None
    except requests.RequestException as error:
        raise SendFailure(RETRY, f"{refresh_problem(error)}.") from None
