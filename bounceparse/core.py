"""Parse one raw message into a bounce verdict.

The order of evidence, strongest first:

1. an RFC 3464 delivery-status part (``message/delivery-status`` and its relatives), one block per
   recipient, enriched with the human-readable text beside it;
2. a provider's JSON notification (Amazon SES and the like) carried in the body;
3. the notification text of a bounce that has no machine-readable part (Postfix, qmail, Exim,
   Gmail, Exchange, ...): addresses named in the text before the copy of the original message,
   minus the bounce's own sender and recipients;
4. a bounce that names no recipient at all: the returned message's single To address.

Nothing in here raises: a message that cannot be read gets ``kind="not_bounce"`` and an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header

from . import lhost, mime, reasons
from . import rhost as rhost_rules
from .evidence import NO_EVIDENCE, PARSER_VERSION, Evidence

BOUNCE = "bounce"
COMPLAINT = "complaint"
AUTO_REPLY = "auto_reply"
NOT_BOUNCE = "not_bounce"


@dataclass(frozen=True)
class Limits:
    """Caps checked while parsing. Beyond ``max_bytes`` only the start of the message is read
    (the notification and its delivery-status part come first); beyond the others the message
    is refused with an error."""

    max_bytes: int = 2_000_000
    max_parts: int = 200
    max_depth: int = 8
    max_header_line: int = 20_000
    max_text: int = 200_000


@dataclass(frozen=True)
class Recipient:
    address: str
    status: str
    smtp_code: str
    reason: str
    hard: bool
    diagnostic: str
    # What decided the reason (and where it was read); ``describe`` says it in a sentence.
    evidence: Evidence = NO_EVIDENCE

    def as_dict(self) -> dict[str, object]:
        return {
            "address": self.address,
            "status": self.status,
            "smtp_code": self.smtp_code,
            "reason": self.reason,
            "hard": self.hard,
            "diagnostic": self.diagnostic,
            "evidence": self.evidence.as_dict(),
        }


@dataclass(frozen=True)
class Result:
    kind: str
    recipients: tuple[Recipient, ...] = ()
    original_message_id: str | None = None
    # A few headers of the returned original (lower-case names), for attribution.
    original_headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    # Why the message is of this kind.
    evidence: Evidence = NO_EVIDENCE
    parser_version: str = PARSER_VERSION

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "kind": self.kind,
            "recipients": [r.as_dict() for r in self.recipients],
            "original_message_id": self.original_message_id,
        }
        if self.error:
            out["error"] = self.error
        out["evidence"] = self.evidence.as_dict()
        out["parser_version"] = self.parser_version
        return out


Refused = mime.Refused


# --- small helpers ---------------------------------------------------------------------------

ADDRESS = re.compile(
    r"(?<![\w.+=/-])(\"[^\"\n]{1,64}\"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}|"
    r"[A-Za-z0-9!#$%&*+=?^_`{|}~-][A-Za-z0-9!#$%&'*+=?^_`{|}~-]*(?:\.[A-Za-z0-9!#$%&'*+=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}|"
    r"[A-Za-z0-9._%+-]+@\[[0-9.]{7,15}\])(?![\w-])"
)
ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
REPLY_CODE = re.compile(r"(?<![\w.#-])([245][0-5][0-9])(?=[ -]|$)")
MESSAGE_ID = re.compile(r"^message-id:[ \t]*(<[^<>\s]{3,250}>)", re.I | re.M)
PRODUCT_HEADER = re.compile(r"^x-msc-message:[ \t]*([A-Za-z0-9_-]{8,64})", re.I | re.M)
SYSTEM_LOCALPARTS = frozenset(
    {
        "mailer-daemon",
        "postmaster",
        "mail-daemon",
        "maildaemon",
        "root",
        "nobody",
        "noreply",
        "no-reply",
        "abuse",
        "double-bounce",
        "bounce",
        "bounces",
    }
)
DSN_TYPES = mime.DSN_TYPES
ORIGINAL_TYPES = mime.ORIGINAL_TYPES
BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|notification|has failed|failed|report)|"
    r"returned mail|mail delivery|failure notice|returned to sender|could not be delivered|"
    r"non[- ]?delivery|delivery problem|not delivered|rejected|bounce|warning: could not send|"
    r"nondeliverable|mail system error|delayed mail|delivery delay|error sending|"
    r"message you sent|unable to deliver|failed delivery|fehlgeschlagen|unzustellbar|"
    r"no se puede entregar|non remis|non recapitabile|delivery notification|sysadmin|"
    r"mail failure|mail could not|problem delivering|permanent error|failed mail|mail failed|"
    r"returning (?:message )?to sender",
    re.I,
)
BOUNCE_SENDER = re.compile(
    r"mailer-daemon|mail-daemon|postmaster|mail delivery|delivery subsystem|mail administrator|"
    r"mailerdaemon|mail system|deliverysystem|daemon@|nondelivery|microsoft outlook",
    re.I,
)
BOUNCE_BODY = re.compile(
    r"could not be delivered|couldn'?t be delivered|undeliverable|delivery (?:has )?failed|"
    r"was not delivered|could not deliver|unable to deliver|permanent (?:fatal )?error|"
    r"delivery to the following|failed permanently|not be delivered"
)  # searched in lower-cased text: with re.I this alternation is ~7x slower
COMPLAINT_SUBJECT = re.compile(r"\bcomplaint\b|abuse report|spam report|feedback report", re.I)
AUTO_REPLY_SUBJECT = re.compile(
    r"auto(?:matic)?[- ]?(?:reply|response|responder|antwort)|out of (?:the )?office|\bvacation\b|"
    r"\baway\b|abwesen|\bauto:|r[ée]ponse automatique|respuesta autom|ausente|fuera de la oficina",
    re.I,
)
# Where the copy of the original message starts inside a text-only bounce.
ORIGINAL_MARKER = re.compile(
    r"^[ \t>|*=_-]*(?:"
    r"(?:the )?(?:original|returned|undelivered|unsent|bounced) (?:message|mail|e-?mail|headers)"
    r"(?: (?:follows|headers|text|below|is attached|attached|was|:))?[ \t.:*=_-]*$|"
    r"(?:below this line is|this is|here is|here are) (?:a )?(?:copy|the headers|the original|"
    r"your original|part of)|"
    r"message headers follow|original message headers|headers of the original|"
    r"(?:a )?copy of (?:the |your )?(?:original )?message(?: follows|,| is| including|:)|"
    r"start of returned message|the original message (?:follows|is attached|headers)|"
    r"content-type: message/rfc822|"
    r"the message (?:headers|header) follows?|"
    r"message text follows)",
    re.M,
)  # searched in lower-cased text: faster than re.I
# For text whose lower-casing changes its length ("İ"): positions must stay the text's own.
_ORIGINAL_MARKER_ANY_CASE = re.compile(ORIGINAL_MARKER.pattern, re.I | re.M)
HEADER_LINE = re.compile(
    r"^(?:Return-Path|Received|DKIM-Signature|Message-I[dD]|MIME-Version|X-Mailer|"
    r"Authentication-Results|ARC-Seal):[ \t]",
    re.M,
)
DSN_IN_TEXT = re.compile(r"^(?:final|original)-recipient:[ \t]*(?:rfc822;)?", re.I | re.M)
_DSN_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$")
_WS = re.compile(r"[ \t\r\n]+")
_QUOTE_PREFIX = re.compile(r"^[ \t>|]+", re.M)


def _decoded_header(value: str | None, cap: int) -> str:
    if not value:
        return ""
    value = str(value)[:cap]
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # a broken encoded-word: keep the raw text
        return value


_TAG = re.compile(r"<(?:br|/p|p|/div|div|tr|/tr|li)\b[^>]{0,200}>", re.I)
_ANY_TAG = re.compile(r"<[^<>]{0,2000}>")
_ENTITY = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&nbsp;": " ", "&#39;": "'"}
_ENTITY_RE = re.compile("|".join(_ENTITY))


def _html_to_text(html: str) -> str:
    html = re.sub(r"(?is)<(style|script)\b.{0,20000}?</\1>", " ", html)
    html = _TAG.sub("\n", html)
    html = _ANY_TAG.sub("", html)
    return _ENTITY_RE.sub(lambda m: _ENTITY[m.group(0)], html)


_REPLY_THEN_STATUS = re.compile(
    r"(?<!\d)([45])\d\d[ -]['\"#]?([45])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)"
)


def _smtp_codes(text: str) -> tuple[str, str]:
    """(enhanced status, reply code) named in a diagnostic, '' when absent. A status right after
    the server's reply code ("550 5.1.1") is the server's own and beats one quoted before it."""
    status = ""
    paired = _REPLY_THEN_STATUS.search(text)
    if paired and paired.group(1) == paired.group(2) and int(paired.group(3)) <= 7:
        status = f"{paired.group(2)}.{int(paired.group(3))}.{int(paired.group(4))}"
    for m in [] if status else ENHANCED.finditer(text):
        cls, subject, detail = m.groups()
        if cls == "2":
            continue
        if int(subject) > 7:
            continue
        status = f"{cls}.{int(subject)}.{int(detail)}"
        break
    code = ""
    for m in REPLY_CODE.finditer(text):
        code = m.group(1)
        break
    return status, code


_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\.)+[a-z]{2,24}", re.I)
_SAID_HOST = re.compile(
    r"\bhost[ \t]+((?:[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\.)+[a-z]{2,24})\.?[ \t]*[\[(]", re.I
)


def _host_of(value: str) -> str:
    """The host name in a Remote-MTA field ("dns; mx.example.jp [192.0.2.1]")."""
    if ";" in value[:12]:
        value = value.split(";", 1)[1]
    m = _HOST.search(value)
    return m.group(0).lower() if m else ""


def _said_host(text: str) -> str:
    """The receiving host a notification names ("host mx.example.jp[192.0.2.1] said: ...")."""
    m = _SAID_HOST.search(text[:3000])
    return m.group(1).lower() if m else ""


def _clean_address(value: str) -> str:
    value = value.strip()
    if ";" in value[:20]:
        value = value.split(";", 1)[1]
    m = ADDRESS.search(value)
    return _normal(m.group(1)) if m else ""


def _normal(address: str) -> str:
    return address.lower().strip(".'")


def _summary(text: str, limit: int = 500) -> str:
    return _WS.sub(" ", text).strip()[:limit]


# --- structure -------------------------------------------------------------------------------


# --- the verdict -----------------------------------------------------------------------------


def parse(raw: bytes | str, limits: Limits | None = None) -> Result:
    """Parse one raw message. Never raises."""
    limits = limits or Limits()
    try:
        return _parse(raw, limits)
    except Refused as exc:
        return Result(
            kind=NOT_BOUNCE, error=str(exc), evidence=Evidence("none", "refused", str(exc))
        )
    except Exception as exc:
        error = f"could not parse: {type(exc).__name__}"
        return Result(kind=NOT_BOUNCE, error=error, evidence=Evidence("none", "refused", error))


def _parse(raw: bytes | str, limits: Limits) -> Result:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="replace")
    raw = raw[: limits.max_bytes]
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    _check_header_lines(raw, limits)
    caps = mime.Caps(limits.max_parts, limits.max_depth, limits.max_header_line, limits.max_text)
    return _parse_message(raw, mime.walk(raw, caps), caps, nested=False)


def _parse_message(data: bytes, parts: mime.Parts, caps: mime.Caps, *, nested: bool) -> Result:
    msg = parts.headers

    original = "\n".join(parts.originals)
    texts = parts.texts or [_html_to_text(h) for h in parts.htmls]
    readable = "\n\n".join(texts)
    notification, tail = _split_notification(readable)
    if not parts.originals and tail:
        original = tail
    original_headers = _original_headers(original, msg)
    message_id = original_headers.get("message-id")

    report_type = mime.content_type(msg.get("content-type", "text/plain"))[1].get("report-type", "")
    complaint_subject = COMPLAINT_SUBJECT.search(msg.get("subject")[:500])
    complaint = ""
    if parts.complaint:
        complaint = "a message/feedback-report part"
    elif str(report_type).lower() == "feedback-report":
        complaint = "report-type=feedback-report"
    elif msg.get("x-hmxmroriginalrecipient"):  # Microsoft's junk-mail reporting programme
        complaint = "X-HmXmrOriginalRecipient header"
    elif complaint_subject and not parts.dsn:
        complaint = f"subject: {complaint_subject.group(0)}"
    if complaint:
        evidence = Evidence("headers", "complaint", complaint)
        return Result(COMPLAINT, (), message_id, original_headers, evidence=evidence)

    header = _BounceHeaders(msg, caps.max_header_line)
    header.env = lhost.Envelope(msg, header.subject, header.sender, notification, readable)
    header.vendor = lhost.vendor_of(header.env)
    recipients: list[Recipient] = []
    if not parts.dsn:
        embedded = DSN_IN_TEXT.search(notification)
        if embedded:  # a delivery-status block pasted into the text (or a broken MIME boundary)
            parts.dsn.append(notification[embedded.start() :])
    success_only = False
    if parts.dsn:
        recipients, success_only = _from_dsn(parts.dsn, notification, header)
    provider_json = not recipients and "notificationType" in notification
    if provider_json:
        recipients = _from_json(notification)
    # A report of failed delivery, by the evidence: a delivery-status part, a vendor's bounce
    # format, Exim's X-Failed-Recipients, or a mail system (or the null sender) writing about a
    # failure. Failure words alone count only outside auto-replies and mailing-list traffic.
    failure = BOUNCE_BODY.search(notification[:3000].lower())
    failure_words = bool(failure)
    bouncy = (
        not provider_json
        and (
            bool(parts.dsn)
            or header.vendor is not None
            or bool(header.failed)
            or (
                (header.mail_system or header.null_sender)
                and (header.bounce_subject or failure_words)
            )
            or (
                header.bounce_subject
                and failure_words
                and not header.auto_reply
                and not header.list_mail
            )
        )
        and not header.receipt
        and not success_only
    )
    if not recipients and bouncy and not nested:
        for start, end in parts.inner[:1]:  # a bounce that returns a bounce: read the inner one
            found = _parse_message(data, mime.walk(data, caps, start, end), caps, nested=True)
            if found.kind == BOUNCE:
                return found
    if not recipients and bouncy:
        recipients = _from_text(notification, header)
    if not recipients and bouncy and not nested and _FORWARDED.match(tail):
        # A bounce forwarded as text ("---" then the bounce itself, headers first): read it.
        inline = tail.lstrip("-=_ \t\n").encode("utf-8", "replace")
        found = _parse_message(inline, mime.walk(inline, caps), caps, nested=True)
        if found.kind == BOUNCE:
            return found
    if not recipients and bouncy:
        recipients = _from_returned_to(original, notification, header)
    if recipients:
        if parts.dsn:
            why = Evidence("dsn", "delivery-status", "a delivery-status part")
        elif provider_json:
            why = Evidence("json", "provider-json", "a provider's JSON notification")
        elif header.vendor is not None:
            why = Evidence("text", "vendor-format", header.vendor.name, header.vendor.name)
        elif header.failed:
            why = Evidence("headers", "failed-recipients", "X-Failed-Recipients header")
        elif header.mail_system or header.null_sender:
            who = header.sender if header.mail_system else "the null sender <>"
            why = Evidence("headers", "mail-system", f"written by {who}"[:200])
        else:
            why = Evidence("text", "failure-words", failure.group(0) if failure else "")
        return Result(BOUNCE, tuple(recipients), message_id, original_headers, evidence=why)
    if header.auto_reply:
        why = Evidence("headers", "auto-reply", header.auto_reply)
        return Result(AUTO_REPLY, (), message_id, original_headers, evidence=why)
    if header.receipt:
        why = Evidence("headers", "receipt", "report-type=disposition-notification")
    elif success_only:
        why = Evidence("dsn", "success-notice", "every recipient was delivered or relayed")
    elif header.list_mail:
        why = Evidence("headers", "list-mail", "mailing-list or bulk mail headers")
    else:
        why = Evidence("none", "no-evidence", "nothing reports a failed delivery")
    return Result(NOT_BOUNCE, (), message_id, original_headers, evidence=why)


def _check_header_lines(raw: bytes, limits: Limits) -> None:
    """The top header block's size (each line's length is checked as it is read)."""
    end = raw.find(b"\n\n")
    if (len(raw) if end < 0 else end) > limits.max_header_line * 20:
        raise Refused("header block too large")


# The start of a whole message quoted as text: an mbox From line or its first header fields.
_FORWARDED = re.compile(
    r"[-=_ \t\n]*(?:From [^\n]*\n)?(?:Return-Path|Received|X-Original-To|Delivered-To|From|Date):",
    re.I,
)
_RECEIVED_HOSTS = re.compile(r"\b(?:by|from)[ \t\r\n]+([A-Za-z0-9.-]+\.[A-Za-z]{2,24})\b")


class _BounceHeaders:
    """What the bounce's own headers say about it."""

    def __init__(self, msg: mime.Headers, cap: int) -> None:
        self.subject = _decoded_header(msg.get("subject"), cap)
        sender = self.sender = _decoded_header(msg.get("from"), cap)
        self.env: lhost.Envelope | None = None
        self.vendor: lhost.Vendor | None = None
        return_path = str(msg.get("return-path", ""))[:cap].strip()
        self.own = set()
        for name in ("from", "to", "cc", "reply-to", "delivered-to", "sender"):
            for value in msg.get_all(name):
                for m in ADDRESS.finditer(str(value)[:cap]):
                    self.own.add(m.group(1).lower())
        # The hosts of the bounce's own first hop (its earliest Received header): where the
        # report was written.
        received = msg.get_all("received")
        hosts = _RECEIVED_HOSTS.findall(received[-1][:cap]) if received else []
        self.received_by = " ".join(h.lower() for h in hosts)
        self.failed = []
        for value in msg.get_all("x-failed-recipients"):
            self.failed += [m.group(1).lower() for m in ADDRESS.finditer(str(value)[:cap])]
        auto = str(msg.get("auto-submitted", "")).lower()
        # Who wrote it: a mail system (MAILER-DAEMON, postmaster, "Mail Delivery System") or a
        # message with the null sender that only reports may carry.
        self.mail_system = bool(BOUNCE_SENDER.search(sender))
        self.null_sender = return_path == "<>" or (return_path == "" and "auto-generated" in auto)
        self.bounce_subject = bool(BOUNCE_SUBJECT.search(self.subject))
        # Mailing-list traffic and bulk mail (newsletters) are never reports of failed delivery.
        self.list_mail = bool(
            msg.get("list-id") or msg.get("list-unsubscribe") or msg.get("list-post")
        ) or msg.get("precedence").strip().lower() in ("bulk", "list", "junk")
        # A read receipt (RFC 8098) tells that a message arrived.
        params = mime.content_type(msg.get("content-type", "text/plain"))[1]
        self.receipt = params.get("report-type", "").lower() == "disposition-notification"
        # An auto-reply, and the header or words that say so ("" when it is not one).
        auto_subject = AUTO_REPLY_SUBJECT.search(self.subject)
        self.auto_reply = (
            ("Auto-Submitted: auto-replied" if auto.startswith("auto-replied") else "")
            or ("X-Autoreply header" if msg.get("x-autoreply") else "")
            or ("X-Autorespond header" if msg.get("x-autorespond") else "")
            or ("Precedence: auto_reply" if msg.get("precedence").lower() == "auto_reply" else "")
            or (f"subject: {auto_subject.group(0)}" if auto_subject else "")
        )


def _split_notification(text: str) -> tuple[str, str]:
    """(the bounce's own words, the returned copy of the original message)."""
    cut = len(text)
    lowered = text.lower()
    if len(lowered) == len(text):
        marker = ORIGINAL_MARKER.search(lowered)
    else:
        marker = _ORIGINAL_MARKER_ANY_CASE.search(text)
    if marker:
        cut = marker.start()
    header = HEADER_LINE.search(text)
    if header and header.start() < cut:
        cut = header.start()
    return text[:cut], text[cut:]


def _original_headers(original: str, msg: mime.Headers) -> dict[str, str]:
    found: dict[str, str] = {}
    own_id = str(msg.get("message-id", "")).strip()
    for m in MESSAGE_ID.finditer(original):
        if m.group(1) != own_id:
            found["message-id"] = m.group(1)
            break
    token = PRODUCT_HEADER.search(original)
    if token:
        found["x-msc-message"] = token.group(1)
    return found


# --- strategy 1: RFC 3464 --------------------------------------------------------------------


def _dsn_blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
                current, last = {}, ""
            continue
        if line[0] in " \t" and last:
            current[last] += " " + line.strip()
            continue
        m = _DSN_FIELD.match(line)
        if m:
            last = m.group(1).lower()
            current[last] = current.get(last, "") or m.group(2).strip()
    if current:
        blocks.append(current)
    return blocks


def _from_dsn(
    dsn_texts: list[str], notification: str, header: _BounceHeaders
) -> tuple[list[Recipient], bool]:
    """The failed recipients of the delivery-status blocks, and whether every recipient the
    blocks name was delivered (a success notice, not a bounce)."""
    out: dict[str, Recipient] = {}
    succeeded = 0
    blocks = [b for text in dsn_texts for b in _dsn_blocks(text)]
    addresses = [
        _clean_address(b.get("final-recipient", ""))
        or _clean_address(b.get("original-recipient", ""))
        for b in blocks
    ]
    others = {a for a in addresses if a}
    reporting = next((_host_of(b["reporting-mta"]) for b in blocks if "reporting-mta" in b), "")
    for block, address in zip(blocks, addresses, strict=True):
        if not address or address in out:
            continue
        action = block.get("action", "").lower().split()[0] if block.get("action") else ""
        if action in ("delivered", "relayed", "expanded") or block.get("status", "").startswith(
            "2."
        ):
            succeeded += 1
            continue
        diagnostic = block.get("diagnostic-code", "")
        if ";" in diagnostic[:12]:
            diagnostic = diagnostic.split(";", 1)[1]
        near = _near(notification, address, others)
        spec = ""
        raw_diag = block.get("diagnostic-code", "")
        if ";" in raw_diag[:12]:
            spec = raw_diag.split(";", 1)[0].strip().upper()
        out[address] = _recipient(
            address,
            status_field=block.get("status", ""),
            diagnostic=diagnostic.strip(),
            context=near,
            delayed=action == "delayed",
            spec=spec,
            action=action,
            rhost=_host_of(block.get("remote-mta", "")),
            relays=f"{_host_of(block.get('reporting-mta', '')) or reporting} {header.received_by}",
            header=header,
            dsn_block="\n".join(f"{k}: {v}" for k, v in block.items()),
            source="dsn",
        )
    return list(out.values()), bool(succeeded) and not out


def _near(text: str, address: str, others: set[str], span: int = 1200) -> str:
    """The notification's words about one address: from where it is named to where the next
    recipient is named."""
    lower = text.lower()
    at = lower.find(address)
    if at < 0:
        return ""
    end = min(len(text), at + span)
    for other in others:
        if other != address:
            nxt = lower.find(other, at + len(address))
            if 0 <= nxt < end:
                end = nxt
    return text[at:end]


def _recipient(
    address: str,
    *,
    status_field: str,
    diagnostic: str,
    context: str,
    delayed: bool = False,
    shown: str | None = None,
    spec: str = "",
    action: str = "",
    rhost: str = "",
    relays: str = "",
    header: _BounceHeaders | None = None,
    dsn_block: str = "",
    source: str = "text",
) -> Recipient:
    """``diagnostic`` is the server's reply as the report quotes it; ``context`` the
    notification's words about the address, read when the reply says less than they do (or
    nothing); ``shown`` (the context unless given) is what is quoted as the diagnostic when the
    server gave none."""
    diagnosis = _WS.sub(" ", diagnostic).strip()
    about = _WS.sub(" ", _paragraph(context, address)).strip()
    if diagnosis and len(about) > len(diagnosis) and diagnosis.lower() in about.lower():
        diagnosis = about  # the notification quotes the same reply with more around it
    elif not diagnosis or len(diagnosis) <= 20:
        # The notification's words about the address: its line and the lines after it up to a
        # blank line, or all the context when that says (almost) nothing more than the address.
        block = _WS.sub(" ", _block(context, address)).strip()
        words = block if len(block) - len(address) > 25 else _WS.sub(" ", context).strip()
        diagnosis = f"{diagnosis} {words}".strip()
    said = reasons.find_status(diagnosis)
    reply = reasons.find_reply(diagnosis, said)
    field = reasons.find_status(status_field) or status_field.strip()[:7]
    status = reasons.prefer(field if _STATUS_SHAPE.match(field) else "", said, reply)
    if not status:
        klass = reply[:1] if reply[:1] in "45" and reply else ("4" if delayed else "5")
        status = f"{klass}.0.0"
    diagnosis = _unfold_reply(diagnosis, reply, said)
    if spec == "X-POSTFIX":
        spec = "SMTP"
    facts = reasons.Facts(
        status=status,
        diagnosis=diagnosis,
        spec=spec,
        action=action or ("delayed" if delayed else ""),
        command=reasons.find_command(diagnosis) or reasons.find_command(context),
        reply=reply,
        destination=address.rpartition("@")[2],
        rhost=rhost or _said_host(diagnosis) or _said_host(context),
        lhost=relays,
        address=address,
        dsn_block=dsn_block,
    )
    if header is not None and header.vendor is not None and header.env is not None:
        header.vendor.refine(facts, context or about, header.env)
    verdict = reasons.decide(facts, rhost_rules.decide)
    if not diagnostic:
        diagnostic = _diagnostic_line(context if shown is None else shown)
    vendor = header.vendor.name if header is not None and header.vendor is not None else ""
    return Recipient(
        address=address,
        status=facts.status,
        smtp_code=reply,
        reason=verdict.reason,
        hard=reasons.is_hard(verdict.reason, facts.status),
        diagnostic=_summary(diagnostic),
        evidence=_evidence(verdict, source, vendor),
    )


_RULES = {"rhost": "provider"}


def _evidence(verdict: reasons.Verdict, source: str, vendor: str) -> Evidence:
    kind, detail = verdict.rule
    return Evidence(source, _RULES.get(kind, kind), detail.strip()[:200], vendor)


_STATUS_SHAPE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


def _paragraph(text: str, address: str) -> str:
    """The notification's paragraph about one address, from where it is named to the next blank
    line, without the address itself ("<a@b>: host x said: 550 ..." -> "host x said: 550 ...")."""
    lower = text.lower()
    at = lower.find(address)
    if at < 0:
        return ""
    end = text.find("\n\n", at)
    chunk = text[at + len(address) : end if 0 <= end < at + 2000 else at + 2000]
    return chunk.lstrip(">:) \t\n")


def _block(text: str, address: str) -> str:
    """The lines that speak of one address: the line that names it, to the next blank line."""
    at = text.lower().find(address)
    if at < 0:
        return ""
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n\n", at)
    return text[start : end if 0 <= end < at + 2000 else at + 2000]


def _unfold_reply(text: str, reply: str, status: str) -> str:
    """A multi-line reply without the code repeated on each line: "550-5.7.1 a 550-5.7.1 b 550
    5.7.1 c" -> "550 5.7.1 a b c", so phrases split across its lines are found."""
    if not reply or f"{reply}-" not in text:
        return text
    for sep in ("-", " "):
        if status:
            text = text.replace(f"{reply}{sep}{status}", "")
        text = text.replace(f"{reply}{sep}", "")
    text = _WS.sub(" ", text).strip()
    return f"{reply} {status} {text}".replace("  ", " ") if reply not in text else text


def describe_failure(address: str, diagnostic: str, *, hint: str = "") -> Recipient:
    """A failed recipient known only from a server's reply, e.g. an ESP's bounce event.
    ``hint`` is a reason the ESP already decided on, used when the words settle nothing."""
    found = _recipient(address, status_field="", diagnostic=diagnostic, context="", source="esp")
    if hint and found.reason in ("undefined", "onhold"):
        status = found.status or ("5.0.0" if not found.smtp_code.startswith("4") else "4.0.0")
        return Recipient(
            address=found.address,
            status=status,
            smtp_code=found.smtp_code,
            reason=hint,
            hard=reasons.is_hard(hint, status),
            diagnostic=found.diagnostic,
            evidence=Evidence("esp", "hint", hint),
        )
    return found


_CODE_LINE = re.compile(r"[245]\d\d[ -]|[245]\.\d{1,3}\.\d{1,3}")


def _diagnostic_line(context: str) -> str:
    lines = [ln.strip() for ln in context.split("\n")]
    coded = [ln for ln in lines if _CODE_LINE.search(ln)]
    if coded:
        return " ".join(coded[:4])
    return " ".join(ln for ln in lines[:6] if ln)


# --- strategy 2: provider JSON ---------------------------------------------------------------


def _from_json(text: str) -> list[Recipient]:
    start = text.find("{")
    end = text.rfind("}")
    if start < 0 or end <= start:
        return []
    try:
        data = json.loads(text[start : end + 1], strict=False)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    if isinstance(data.get("Message"), str):  # an SNS envelope around the SES notification
        try:
            data = json.loads(data["Message"], strict=False)
        except ValueError:
            return []
    bounce = data.get("bounce") if isinstance(data, dict) else None
    if not isinstance(bounce, dict):
        return []
    permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
    out = []
    for item in bounce.get("bouncedRecipients") or []:
        if not isinstance(item, dict):
            continue
        address = _clean_address(str(item.get("emailAddress", "")))
        if not address:
            continue
        diagnostic = str(item.get("diagnosticCode", ""))
        status = str(item.get("status", "")) or ("5.0.0" if permanent else "4.0.0")
        out.append(
            _recipient(
                address, status_field=status, diagnostic=diagnostic, context="", source="json"
            )
        )
    return out


# --- strategy 3: the notification's own words -------------------------------------------------

_NOT_RECIPIENT_BEFORE = re.compile(
    r"(?:mail from:?|from:|sender:|envelope-from|return-path:|message-id:|id|reply-to:|"
    r"contact|postmaster|administrator|by|smtp\.mailfrom=|header\.from=|on behalf of|helo)"
    r"[ \t]*[<(\"]?[ \t]*$",
)  # searched in lower-cased text


def _from_text(notification: str, header: _BounceHeaders) -> list[Recipient]:
    text = _QUOTE_PREFIX.sub("", notification) if notification.count("\n>") > 3 else notification
    candidates: list[tuple[int, str]] = []
    seen: set[str] = set()
    for m in _addresses(text):
        address = _normal(m.group(1))
        if address in seen or address in header.own:
            continue
        local = address.split("@", 1)[0]
        if local in SYSTEM_LOCALPARTS or local.startswith(("mailer-daemon", "postmaster")):
            continue
        seen.add(address)
        before = text[max(0, m.start() - 30) : m.start()]
        if _NOT_RECIPIENT_BEFORE.search(before.lower()) and address not in header.failed:
            continue
        candidates.append((m.start(), address))
    for address in header.failed:
        if address not in seen:
            seen.add(address)
            candidates.append((len(text), address))
    out = []
    lower = text.lower()
    for index, (start, address) in enumerate(candidates):
        own, lead = _words_about(text, candidates, index)
        if any(_smtp_codes(lead)) and not _CODE_LINE.search(own):
            context = shown = lead + own  # the server's reply is the line around the address
        else:
            if len(own) < 40 or not _CODE_LINE.search(own):
                own = f"{own}\n{_paragraph_after(text, lower, address)}".strip()
            context, shown = own, lead + own
        if len(candidates) == 1:
            context = f"{context}\n{text[:start][-600:]}"
            shown = f"{shown}\n{text[: start - len(lead)][-600:]}"
        out.append(
            _recipient(
                address,
                status_field="",
                diagnostic="",
                context=context,
                shown=shown,
                relays=header.received_by,
                header=header,
            )
        )
    return out


def _addresses(text: str) -> Iterator[re.Match[str]]:
    """ADDRESS.finditer(text), tried only on the lines that have an "@" (an address never spans
    lines): the same matches, several times faster on a long notification."""
    at = text.find("@")
    while at >= 0:
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        end = len(text) if end < 0 else end
        yield from ADDRESS.finditer(text, start, end)
        at = text.find("@", end)


def _words_about(text: str, candidates: list[tuple[int, str]], index: int) -> tuple[str, str]:
    """(the words from one candidate address on, the words before it on its line). Servers often
    reply before the address ("550 5.1.1 <a@example.com> user unknown"), so its line is kept whole
    unless an earlier candidate shares it; the start of the next candidate's line is that
    candidate's own."""
    start = candidates[index][0]
    if start >= len(text):  # named only in X-Failed-Recipients
        return "", ""
    end = candidates[index + 1][0] if index + 1 < len(candidates) else len(text)
    stop = min(end, start + 1500)
    next_line = text.rfind("\n", start, end) + 1
    if index + 1 < len(candidates) and next_line > start and end == stop:
        stop = next_line
    begin = text.rfind("\n", 0, start) + 1
    if index and candidates[index - 1][0] >= begin:
        begin = start
    return text[start:stop], text[begin:start]


_RETURNED_TO = re.compile(r"^to:[ \t]*(.{1,2000})$", re.I | re.M)


def _from_returned_to(original: str, notification: str, header: _BounceHeaders) -> list[Recipient]:
    """A bounce that names no recipient: the returned message's single To address."""
    m = _RETURNED_TO.search(original)
    if not m:
        return []
    addresses = {_normal(a.group(1)) for a in ADDRESS.finditer(m.group(1))} - header.own
    if len(addresses) != 1:
        return []
    return [
        _recipient(
            addresses.pop(),
            status_field="",
            diagnostic="",
            context=notification,
            relays=header.received_by,
            header=header,
            source="returned",
        )
    ]


def _paragraph_after(text: str, lower: str, address: str) -> str:
    at = lower.find(address)
    return text[at : at + 1000] if at >= 0 else text[-1000:]
