"""ESP event webhooks (SendGrid, SparkPost) for custom SMTP channels, through django-anymail.

anymail parses each ESP's event format into ``AnymailTrackingEvent``; we authenticate the post
against the channel's own webhook secret (HTTP Basic, compared by hash in constant time), keep
only bounces and spam reports, and record each as a ``BounceEvent`` (a ``ResponseEvent`` of kind
complaint) whose dedupe key is the ESP's event id, so an ESP retrying a post counts nothing
twice. Our message is found by the Message-ID the ESP reports
(SendGrid's ``smtp-id``), by our token in the event metadata (we add it to every message sent
through SendGrid or SparkPost), or by recipient and time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import warnings
from typing import Any

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from anymail.utils import get_request_basic_auth
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from anymail.webhooks.sparkpost import SparkPostTrackingWebhookView
from django.db import transaction
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext_noop

import bounceparse
from accounts.models import Tenant
from channels.esp import METADATA_KEY
from channels.models import Channel
from msc_admin.stored import Day, sentence
from sending.mime import PRODUCT_HEADER
from sending.models import SuppressionReason
from sending.services.suppressions import Cause, suppressions_add_for_bounces

from . import services
from .models import BounceSource, EspProvider, EspWebhook

BASIC_USER = "msc"
REALM = "msc-admin ESP webhook"

log = logging.getLogger(__name__)

# anymail 15 says, on every SendGrid request, that it no longer supports SendGrid officially
# (anymail issue 432). Its event parsing still works and is tested here; the notice is not
# something an operator can act on per request.
warnings.filterwarnings(
    "ignore", message="django-anymail has dropped official support for SendGrid"
)

# What an ESP's own bounce classification says, for when the server's words settle nothing.
SPARKPOST_CLASSES = {
    "10": "userunknown",
    "21": "hostunknown",
    "22": "mailboxfull",
    "23": "mesgtoobig",
    "24": "expired",
    "25": "policyviolation",
    "50": "blocked",
    "51": "spamdetected",
    "52": "spamdetected",
    "53": "securityerror",
    "54": "rejected",
}
SENDGRID_TYPES = {"blocked": "blocked", "expired": "expired"}


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def webhook_issue(*, tenant: Tenant, channel: Channel, provider: str) -> tuple[EspWebhook, str]:
    """Create the channel's webhook, or give it a new secret. Returns the secret, once."""
    secret = secrets.token_urlsafe(24)
    webhook = EspWebhook.objects.select_for_update().filter(channel=channel).first()
    if webhook is None:
        webhook = EspWebhook(tenant=tenant, channel=channel, key=secrets.token_urlsafe(18))
    webhook.provider = provider
    webhook.secret_hash = _hash(secret)
    webhook.save()
    return webhook, secret


def _hint(provider: str, event: AnymailTrackingEvent) -> str:
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    if provider == EspProvider.SPARKPOST:
        inner = next(iter(raw.get("msys", {}).values()), {}) if "msys" in raw else raw
        return SPARKPOST_CLASSES.get(str(inner.get("bounce_class", "")), "")
    return SENDGRID_TYPES.get(str(raw.get("type", "")).lower(), "")


def _result(provider: str, event: AnymailTrackingEvent) -> bounceparse.Result:
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    recipient = bounceparse.describe_failure(
        str(event.recipient or "").strip().lower(),
        str(event.mta_response or event.description or ""),
        hint=_hint(provider, event),
    )
    smtp_id = str(raw.get("smtp-id") or "").strip()
    token = (event.metadata or {}).get(METADATA_KEY)
    return bounceparse.Result(
        kind=bounceparse.BOUNCE,
        recipients=(recipient,),
        original_message_id=smtp_id if smtp_id.startswith("<") else None,
        original_headers={PRODUCT_HEADER.lower(): str(token)} if token else {},
    )


def reparse(identity: str, payload: bytes) -> bounceparse.Result | None:
    """Today's verdict on an ESP event recorded earlier: its stored JSON read again as anymail
    reads a post (``identity`` is the recorded bounce's key, ``esp:<provider>:<event id>…``).
    None when the payload cannot be read as that provider's event."""
    provider = identity.split(":", 2)[1] if identity.startswith("esp:") else ""
    try:
        data = json.loads(payload)
        if provider == EspProvider.SENDGRID:
            event = SendGridWebhook().esp_to_anymail_event(data)
        elif provider == EspProvider.SPARKPOST:
            view = SparkPostWebhook()
            event_class, inner, raw_event = view.unwrap_event(data)
            event = view.esp_to_anymail_event(event_class, inner, raw_event)
        else:
            return None
    except (ValueError, KeyError, TypeError, AttributeError, NotImplementedError):
        return None
    if event is None or event.event_type != EventType.BOUNCED or not event.recipient:
        return bounceparse.Result(kind=bounceparse.NOT_BOUNCE)
    return _result(provider, event)


# SparkPost bounce classes that are soft (its policy_rejection is permanent otherwise).
SPARKPOST_SOFT_CLASSES = {"20", "21", "22", "23", "24"}


def _dropped(provider: str, event: AnymailTrackingEvent) -> str:
    """The ESP's words when it refused to send to a permanently undeliverable address
    (SendGrid ``dropped`` as a bounced or invalid address, SparkPost ``policy_rejection`` of a
    permanent class); empty otherwise."""
    if event.event_type != EventType.REJECTED or not event.recipient:
        return ""
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    if provider == EspProvider.SPARKPOST:
        inner = next(iter(raw.get("msys", {}).values()), {}) if "msys" in raw else raw
        if str(inner.get("type", "")) != "policy_rejection":
            return ""
        if str(inner.get("bounce_class", "")) in SPARKPOST_SOFT_CLASSES:
            return ""
        return str(inner.get("reason") or inner.get("raw_reason") or "policy rejection")
    if event.reject_reason not in (RejectReason.BOUNCED, RejectReason.INVALID):
        return ""
    return str(raw.get("reason") or event.description or "dropped")


def _suppress_dropped(webhook: EspWebhook, events: list[AnymailTrackingEvent]) -> None:
    """Addresses the ESP dropped as permanently undeliverable go on the suppression list.
    (Spam reports are recorded as complaints, which suppress their address: ``_complaint``.)"""
    name = EspProvider(webhook.provider).label
    causes = []
    for event in events:
        if words := _dropped(webhook.provider, event):
            # Stored as a sentence (``msc_admin.stored``): read in the reader's language, the
            # day in their format, the ESP's words as it said them.
            detail = sentence(
                gettext_noop("Dropped by %(provider)s on %(day)s: %(words)s"),
                provider=str(name),
                day=Day(event.timestamp or timezone.now()),
                words=words,
            )
            causes.append(
                Cause(
                    webhook.tenant_id,
                    str(event.recipient),
                    SuppressionReason.ESP_DROPPED,
                    detail,
                )
            )
    with transaction.atomic():
        suppressions_add_for_bounces(causes)


def _complaint(provider: str, event: AnymailTrackingEvent) -> bounceparse.Result:
    """An ESP's spam report (SendGrid ``spamreport``, SparkPost ``spam_complaint``) as the
    parser would read an ARF report, attributed by the same fields as the ESP's bounces."""
    bounce = _result(provider, event)
    recipient = bounceparse.Recipient(
        address=str(event.recipient or "").strip().lower(),
        status="",
        smtp_code="",
        reason="",
        hard=False,
        diagnostic="",
    )
    return bounceparse.Result(
        kind=bounceparse.COMPLAINT,
        recipients=(recipient,),
        original_message_id=bounce.original_message_id,
        original_headers=bounce.original_headers,
    )


def record_events(webhook: EspWebhook, events: list[AnymailTrackingEvent]) -> tuple[int, int]:
    """Record the bounces and spam reports (complaints) among the events, and suppress the
    addresses the ESP dropped. Returns (bounces recorded, bounces already recorded)."""
    _suppress_dropped(webhook, events)
    items = []
    for event in events:
        complaint = event.event_type == EventType.COMPLAINED
        if not event.recipient or not (complaint or event.event_type == EventType.BOUNCED):
            continue  # deliveries, opens, deferrals, auto-replies: neither
        payload = json.dumps(event.esp_event, sort_keys=True, default=str).encode()
        event_id = event.event_id or hashlib.sha256(payload).hexdigest()[:32]
        items.append(
            services.Incoming(
                raw=payload,
                received_at=event.timestamp or timezone.now(),
                result=(_complaint if complaint else _result)(webhook.provider, event),
                identity=f"esp:{webhook.provider}:{event_id}",
                reported_by=EspProvider(webhook.provider).label if complaint else "",
            )
        )
    done = services.ingest_many(
        tenant=webhook.tenant, items=items, source=BounceSource.WEBHOOK, channel=webhook.channel
    )
    recorded = sum(len(d.created) for d in done)
    duplicates = sum(d.duplicates for d in done)
    EspWebhook.objects.filter(pk=webhook.pk).update(
        last_event_at=timezone.now(),
        events_received=F("events_received") + len(events),
        bounces_recorded=F("bounces_recorded") + recorded,
    )
    return recorded, duplicates


def _unauthorized() -> HttpResponse:
    response = HttpResponse(
        "This webhook needs the user name and secret from its URL (HTTP Basic).",
        status=401,
        content_type="text/plain; charset=utf-8",
    )
    response["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return response


class _ChannelWebhook:
    """Mixed into an anymail tracking view: the channel's secret instead of a global one, and
    our ledger instead of anymail's signal."""

    provider: str
    webhook: EspWebhook
    # anymail wants one global secret and warns without it; ours are per channel and checked in
    # validate_request, so its own basic-auth check is handed a placeholder and then disabled.
    webhook_secret: str | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(webhook_secret="per-channel", **kwargs)  # type: ignore[call-arg]  # noqa: S106
        self.basic_auth: list[str] = []

    def post(self, request: HttpRequest, *args: Any, key: str = "", **kwargs: Any) -> HttpResponse:
        webhook = (
            EspWebhook.objects.select_related("tenant", "channel")
            .filter(key=key, provider=self.provider)
            .first()
        )
        if webhook is None:
            raise Http404
        self.webhook = webhook
        try:
            self.run_validators(request)  # type: ignore[attr-defined]
        except AnymailWebhookValidationFailure:
            # anymail lets this become Django's 400 for a suspicious operation; missing or wrong
            # credentials are an HTTP 401 that tells the ESP (or a person testing) what to send.
            log.warning("%s webhook %s: missing or wrong credentials", self.provider, webhook.pk)
            return _unauthorized()
        try:
            events = self.parse_events(request)  # type: ignore[attr-defined]
        except (ValueError, KeyError, TypeError, AttributeError):
            return HttpResponseBadRequest("The event payload could not be read.")
        record_events(webhook, events)
        return HttpResponse()

    def validate_request(self, request: HttpRequest) -> None:
        given = get_request_basic_auth(request) or ""
        user, _, secret = given.partition(":")
        ok = user == BASIC_USER and constant_time_compare(_hash(secret), self.webhook.secret_hash)
        if not ok:
            raise AnymailWebhookValidationFailure("Missing or invalid basic auth")


class SendGridWebhook(_ChannelWebhook, SendGridTrackingWebhookView):
    provider = EspProvider.SENDGRID


class SparkPostWebhook(_ChannelWebhook, SparkPostTrackingWebhookView):
    provider = EspProvider.SPARKPOST
