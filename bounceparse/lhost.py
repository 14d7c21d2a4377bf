"""The formats of particular mail servers and providers ("lhost" in Sisimai's words).

Many servers write a bounce in a shape of their own and say things the general rules cannot
know: Exchange's NDR codes, Gmail's "(state 14)", qmail's "does not like recipient", a PowerMTA
bounce category. Each vendor here is recognised from the bounce's own headers (and, where the
headers say too little, its opening words), as Sisimai's lhost modules recognise them, and then
adds what its format states about one recipient: the reason, the SMTP command the rejection
answered, the status. Nothing here decides a recipient's address; that stays with the parser.

Each rule names the corpus families whose samples it was written against (``families``), so the
quality tool can score a family with the rules written for that family switched off.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import mime
from .reasons import Facts, aligned, find_command, find_status, status_reason
from .rules import any_held_out, enabled


@dataclass
class Envelope:
    """What the bounce's own headers and opening words say, for the vendor rules."""

    headers: mime.Headers
    subject: str
    sender: str
    text: str  # the notification (the bounce's own words)
    full: str = ""  # all its readable text, the returned copy included

    def __post_init__(self) -> None:
        self.received_fields = self.headers.get_all("received")
        self._received = "\n".join(self.received_fields)

    def has(self, name: str) -> bool:
        return bool(self.headers.get(name))

    def received(self, part: str) -> bool:
        return part in self._received


@dataclass(frozen=True)
class Vendor:
    name: str
    families: frozenset[str]
    matches: Callable[[Envelope], bool]
    refine: Callable[[Facts, str, Envelope], None]
    # Words its reports always carry: without one of them the message is not in this format,
    # whatever its headers say (qmail and Exim also relay ordinary mail).
    markers: tuple[str, ...] = ()


def _said(f: Facts, about: str) -> str:
    """The vendor's words about the recipient: the server's reply and the notification's
    paragraph about the address."""
    return f"{f.diagnosis} {about}"


def _first(table: Mapping[str, tuple[str, ...]], text: str) -> str:
    for reason, phrases in table.items():
        if any(p in text for p in phrases):
            return reason
    return ""


def _set(f: Facts, vendor: str, reason: str) -> None:
    if reason:
        f.vendor_reason = reason
        f.vendor = vendor


# --- Google: Gmail, Google Workspace, Google Groups ----------------------------------------------


def _google(env: Envelope) -> bool:
    return "<mailer-daemon@googlemail.com>" in env.sender and (
        "Delivery Status Notification" in env.subject
    )


def _groups(env: Envelope) -> bool:
    return (
        _google(env)
        and env.has("x-failed-recipients")
        and env.has("x-google-smtp-source")
        and "groups.google.com" in env.text
    )


def _groups_refine(f: Facts, about: str, env: Envelope) -> None:
    # Four "* ..." lines list why a group refused the post: the sender may not post there.
    bullets = len(re.findall(r"^ ?\* ?", env.text, re.M))
    _set(f, "Google Groups", "rejected" if bullets == 4 else "onhold")


_GMAIL_STATES = {
    "6": ("MAIL", "systemerror"),
    "8": ("AUTH", "systemerror"),
    "9": ("AUTH", "systemerror"),
    "12": ("AUTH", "norelaying"),
    "13": ("EHLO", "blocked"),
    "14": ("RCPT", "userunknown"),
    "15": ("DATA", "filtered"),
    "17": ("DATA", "filtered"),
    "18": ("DATA", "filtered"),
}
_GMAIL_WORDS = {
    "expired": (
        "DNS Error: Could not contact DNS servers",
        "Delivery to the following recipient has been delayed",
        "The recipient server did not accept our requests to connect",
    ),
    "hostunknown": (
        "DNS Error: Domain name not found",
        "DNS Error: DNS server returned answer with no data",
    ),
}
_GMAIL_STATE = re.compile(r"\(state (\d{1,2})\)")


def _gmail(env: Envelope) -> bool:
    return _google(env) and "Delivery to the following recipient" in env.text


def _gmail_refine(f: Facts, about: str, env: Envelope) -> None:
    said = _said(f, about)
    m = _GMAIL_STATE.search(said)
    reason = ""
    if m and m.group(1) in _GMAIL_STATES:
        f.command, reason = _GMAIL_STATES[m.group(1)]
    else:
        reason = _first(_GMAIL_WORDS, f"{said} {env.text}")
    if reason:
        # A specific status in the reply outranks the state's general reason.
        status = find_status(said)
        if status and ".0" not in status and status_reason(status):
            reason = status_reason(status)
    _set(f, "Gmail", reason)


_WORKSPACE_WORDS = {
    "userunknown": (
        "because the address couldn't be found. Check for typos or unnecessary spaces and try again.",
    ),
    "notaccept": ("Null MX",),
    "networkerror": (" had no relevant answers.", " responded with code NXDOMAIN"),
}


def _workspace(env: Envelope) -> bool:
    # Google Workspace's reports open with a "** Address not found **" style title.
    return (
        _google(env)
        and env.has("x-gm-message-state")
        and (env.text.startswith("** ") or "\n** " in env.text)
    )


def _workspace_refine(f: Facts, about: str, env: Envelope) -> None:
    _set(f, "Google Workspace", _first(_WORKSPACE_WORDS, f"{_said(f, about)} {env.text}"))


# --- Microsoft: Microsoft 365, Exchange Server, Outlook.com -------------------------------------

_O365_MARKS = (
    "x-ms-exchange-message-is-ndr",
    "x-microsoft-antispam-prvs",
    "x-exchange-antispam-report-test",
    "x-exchange-antispam-report-cfa-test",
    "x-ms-exchange-crosstenant-originalarrivaltime",
    "x-ms-exchange-crosstenant-fromentityheader",
    "x-ms-exchange-transport-crosstenantheadersstamped",
)
_O365_HOSTS = (".outbound.protection.outlook.com", ".prod.outlook.com")
# Microsoft 365's enhanced status codes (its NDR documentation), most specific first.
_O365_STATUS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), reason)
    for pattern, reason in (
        (r"4\.4\.7", "expired"),
        (r"4\.4\.312", "networkerror"),
        (r"4\.4\.316", "expired"),
        (r"4\.7\.26", "authfailure"),
        (r"4\.7\.[56]\d\d", "blocked"),
        (r"4\.7\.8[5-9]\d", "blocked"),
        (r"5\.0\.350", "contenterror"),
        (r"5\.1\.10", "userunknown"),
        (r"5\.4\.1", "norelaying"),
        (r"5\.4\.6", "networkerror"),
        (r"5\.4\.312", "networkerror"),
        (r"5\.4\.316", "expired"),
        (r"5\.6\.11", "contenterror"),
        (r"5\.7\.1", "rejected"),
        (r"5\.7\.1[23]", "rejected"),
        (r"5\.7\.124", "rejected"),
        (r"5\.7\.13[3-6]", "rejected"),
        (r"5\.7\.23", "authfailure"),
        (r"5\.7\.25", "networkerror"),
        (r"5\.7\.50[1-3]", "spamdetected"),
        (r"5\.7\.50[4-5]", "filtered"),
        (r"5\.7\.50[6-7]", "blocked"),
        (r"5\.7\.508", "toomanyconn"),
        (r"5\.7\.509", "authfailure"),
        (r"5\.7\.510", "notaccept"),
        (r"5\.7\.511", "rejected"),
        (r"5\.7\.512", "policyviolation"),
        (r"5\.7\.57", "securityerror"),
        (r"5\.7\.60[6-9]", "blocked"),
        (r"5\.7\.6[1-4]\d", "blocked"),
        (r"5\.7\.7[0-4]\d", "toomanyconn"),
    )
)


def _office365(env: Envelope) -> bool:
    score = sum(
        word in env.subject for word in ("Undeliverable:", "Onbestelbaar:", "Não_entregue:")
    )
    score += sum(name in env.headers for name in _O365_MARKS)
    score += any(env.received(host) for host in _O365_HOSTS)
    score += any(host in env.headers.get("message-id") for host in _O365_HOSTS)
    return score >= 2


def _office365_refine(f: Facts, about: str, env: Envelope) -> None:
    said = _said(f, about)
    if not f.status or f.status.endswith(".0.0"):
        f.status = find_status(said) or f.status
    if aligned(said, ("unknown recipient or mailbox unavailable ->", "@")):
        f.command = "RCPT"
    for pattern, reason in _O365_STATUS:
        if pattern.fullmatch(f.status):
            _set(f, "Microsoft 365", reason)
            return


_EXCHANGE_SUBJECTS = ("Undeliverable", "Non_remis_", "Non recapitabile")
_EXCHANGE_NDR = {
    "SMTPSEND.DNS.NonExistentDomain": "hostunknown",
    "SMTPSEND.DNS.MxLoopback": "networkerror",
    "RESOLVER.ADR.BadPrimary": "systemerror",
    "RESOLVER.ADR.RecipNotFound": "userunknown",
    "RESOLVER.ADR.ExRecipNotFound": "userunknown",
    "RESOLVER.ADR.RecipLimit": "toomanyconn",
    "RESOLVER.ADR.InvalidInSmtp": "systemerror",
    "RESOLVER.ADR.Ambiguous": "systemerror",
    "RESOLVER.RST.AuthRequired": "securityerror",
    "RESOLVER.RST.NotAuthorized": "rejected",
    "RESOLVER.RST.RecipSizeLimit": "mesgtoobig",
    "QUEUE.Expired": "expired",
}
_EXCHANGE_CODE = re.compile(r"\b((?:RESOLVER|QUEUE|SMTPSEND)\.[A-Za-z.]+);")


def _exchange2007(env: Envelope) -> bool:
    if not env.subject.startswith(_EXCHANGE_SUBJECTS):
        return False
    if len(env.headers.get("content-language")) not in (2, 5):
        return False
    return not (
        "x-ms-exchange-crosstenant-originalarrivaltime" in env.headers
        or "x-ms-exchange-crosstenant-fromentityheader" in env.headers
    )


def _exchange2007_refine(f: Facts, about: str, env: Envelope) -> None:
    m = _EXCHANGE_CODE.search(_said(f, about))
    if m:
        _set(f, "Exchange Server 2007", _EXCHANGE_NDR.get(m.group(1), ""))


_MSEXCH_CODES = {
    "000B099C": "onhold",
    "000B09AA": "onhold",
    "000B09B6": "onhold",
    "000C05A6": "userunknown",
    "00010256": "systemerror",
    "000D06B5": "systemerror",
    "00120270": "networkerror",
    "00050311": "contenterror",
    "000502CC": "contenterror",
    "000B0981": "securityerror",
    "000C0595": "filtered",
}
_MSEXCH = re.compile(r"MSEXCH:.{0,200}?\(([0-9A-F]{8})\)")


def _exchange2003(env: Envelope) -> bool:
    if "x-ms-embedded-report" in env.headers:
        return True
    mailer = env.headers.get("x-mailer")
    if mailer.startswith(("Internet Mail Service (", "Microsoft Exchange Server Internet Mail")):
        return True
    if env.headers.get("x-mimeole").startswith("Produced By Microsoft Exchange"):
        return True
    return env.received(" with Internet Mail Service (")


def _exchange2003_refine(f: Facts, about: str, env: Envelope) -> None:
    m = _MSEXCH.search(_said(f, about))
    if m:
        _set(f, "Exchange Server 2003", _MSEXCH_CODES.get(m.group(1), ""))


_OUTLOOK_WORDS = {
    "hostunknown": (
        "The mail could not be delivered to the recipient because the domain is not reachable",
    ),
    "userunknown": ("Requested action not taken: mailbox unavailable",),
}


def _outlook(env: Envelope) -> bool:
    score = int("Delivery Status Notification" in env.subject)
    score += env.has("x-message-delivery") + env.has("x-message-info")
    score += env.received(".hotmail.com")
    return score >= 2


def _outlook_refine(f: Facts, about: str, env: Envelope) -> None:
    _set(f, "Outlook.com", _first(_OUTLOOK_WORDS, f.diagnosis))


# --- qmail -------------------------------------------------------------------------------------

_QMAIL_COMMANDS = {
    "CONN": (" but greeting failed.",),
    "EHLO": (" but my name was rejected.",),
    "MAIL": (" but sender was rejected.",),
    "RCPT": (" does not like recipient.",),
    "DATA": (" failed on DATA command", " failed after I sent the message"),
}
_QMAIL_WORDS = {
    "userunknown": ("no mailbox here by that name", "does not like recipient."),
    "mailboxfull": ("disk quota exceeded",),
    "mesgtoobig": ("Message size exceeds fixed maximum message size:",),
    "hostunknown": ("Sorry, I couldn't find any host ",),
    "systemfull": ("Requested action not taken: mailbox unavailable (not enough free space)",),
    "systemerror": ("bad interpreter: No such file or directory", "system error", "Unable to"),
    "notaccept": ("Sorry, I couldn't find a mail exchanger or IP address",),
    "networkerror": (
        "Sorry, I wasn't able to establish an SMTP connection",
        "Sorry. Although I'm listed as a best-preference MX or A for that host",
    ),
}
_QMAIL_LDAP = {
    "suspend": (
        "Mailaddress is administratively disabled",
        "Mailaddress is administrativley disabled",
    ),
    "userunknown": ("Sorry, no mailbox here by that name",),
    "exceedlimit": ("The message exeeded the maximum size the user accepts",),
    "systemerror": (
        "Automatic homedir creator crashed",
        "Illegal value in LDAP attribute",
        "LDAP attribute is not given but mandatory",
        "Timeout while performing search on LDAP server",
        "Too many results returned but needs to be unique",
        "Permanent error while executing qmail-forward",
        "Temporary error in automatic homedir creation",
        "Temporary error while executing qmail-forward",
        "Temporary failure in LDAP lookup",
        "Unable to contact LDAP server",
        "Unable to login into LDAP server, bad credentials",
    ),
}


def _qmail(env: Envelope) -> bool:
    if env.subject == "failure notice":
        return True
    return any(
        aligned(value, ("(qmail ", "invoked for bounce)"))
        or aligned(value, ("(qmail ", "invoked from ", "network)"))
        for value in env.received_fields
    )


def _qmail_refine(f: Facts, about: str, env: Envelope) -> None:
    said = _said(f, about)
    for command, phrases in _QMAIL_COMMANDS.items():
        if any(said.find(p) > 0 for p in phrases):
            f.command = command
            break
    if f.command in ("EHLO", "HELO"):
        _set(f, "qmail", "blocked")
        return
    if aligned(said, (" does not like recipient.", "this message has been in the queue too long.")):
        _set(f, "qmail", "onhold")
        return
    remote = said[said.find("Remote host said:") :] if "Remote host said:" in said else ""
    reason = (remote and _first(_QMAIL_WORDS, remote)) or _first(_QMAIL_WORDS, said)
    reason = reason or _first(_QMAIL_LDAP, said)
    if not reason and "this message has been in the queue too long." in said:
        reason = "expired"
    _set(f, "qmail", reason)


# --- Exim --------------------------------------------------------------------------------------

_EXIM_SUBJECTS = (
    "Delivery Status Notification",
    "Mail delivery failed",
    "Mail failure",
    "Message frozen",
    "Warning: message ",
    "error(s) in forwarding or filtering",
)
_EXIM_WORDS = {
    "userunknown": ("user not found",),
    "hostunknown": (
        "all host address lookups failed permanently",
        "all relevant MX records point to non-existent hosts",
        "Unrouteable address",
    ),
    "mailboxfull": ("mailbox is full", "error: quota exceed"),
    "notaccept": (
        "an MX or SRV record indicated no SMTP service",
        "no host found for existing SMTP connection",
    ),
    "syntaxerror": (
        "angle-brackets nested too deep",
        'expected word or "<"',
        "domain missing in source-routed address",
        "malformed address:",
    ),
    "systemerror": (
        "delivery to file forbidden",
        "delivery to pipe forbidden",
        "local delivery failed",
        "LMTP error after ",
    ),
    "contenterror": ('Too many "Received" headers',),
}
_EXIM_DELAYED = (
    "retry timeout exceeded",
    "No action is required on your part",
    "retry time not reached for any host after a long failure period",
    "all hosts have been failing for a long time and were last tried",
    "Delay reason: ",
    "has been frozen",
    "was frozen on arrival by ",
)
_EXIM_ID = re.compile(r"^<[0-9A-Za-z]{7}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}@")


def _exim(env: Envelope) -> bool:
    score = int("Mail Delivery System" in env.sender)
    score += any(s in env.subject for s in _EXIM_SUBJECTS)
    score += bool(_EXIM_ID.match(env.headers.get("message-id")))
    third_party = any(
        name in env.headers for name in ("x-mx-bounce", "x-mxl-hash", "x-mxl-notehash")
    ) or "<mxl~" in env.headers.get("message-id")
    return score >= 2 or third_party


def _exim_refine(f: Facts, about: str, env: Envelope) -> None:
    said = _said(f, about)
    if "SMTP error from remote " in said or "LMTP error after " in said:
        f.command = find_command(said) or f.command
    if f.command in ("EHLO", "HELO"):
        _set(f, "Exim", "blocked")
        return
    if f.command == "MAIL":
        _set(f, "Exim", "onhold")
        return
    reason = _first(_EXIM_WORDS, said)
    if not reason:
        if any(p in f"{said} {env.text}" for p in _EXIM_DELAYED):
            reason = "expired"
        elif "pipe to |" in said:
            reason = "mailererror"
    _set(f, "Exim", reason)


# --- Japanese mobile carriers ------------------------------------------------------------------

_EZWEB_WORDS = {
    "mailboxfull": ("The user(s) account is temporarily over quota",),
    "suspend": ("The user(s) account is disabled.", "The user(s) account is temporarily limited."),
    "expired": ("Your message was not delivered within ",),
    "onhold": ("Each of the following recipients was rejected by a remote mail server",),
}


def _ezweb(env: Envelope) -> bool:
    score = sum(s in env.sender for s in ("Postmaster@ezweb.ne.jp", "Postmaster@au.com")) + int(
        env.subject == "Mail System Error - Returned Mail"
    )
    score += env.received("ezweb.ne.jp (EZweb Mail) with") + env.received(".au.com (")
    message_id = env.headers.get("message-id")
    score += message_id.endswith(".ezweb.ne.jp>") + message_id.endswith(".au.com>")
    return score >= 2


def _ezweb_refine(f: Facts, about: str, env: Envelope) -> None:
    if env.headers.get("x-spasign") == "NG":
        _set(f, "au EZweb", "filtered")
        return
    transcript = re.search(r" >>> ([^\n]*)", f"{about}\n{env.text}")
    command = find_command(transcript.group(1)) if transcript else ""
    if command == "RCPT":
        f.command = command
        _set(f, "au EZweb", "userunknown")
        return
    reason = _first(_EZWEB_WORDS, f"{_said(f, about)} {env.text}")
    if not reason and not f.destination.endswith(("ezweb.ne.jp", "au.com")):
        reason = "userunknown"
    _set(f, "au EZweb", reason)


_KDDI_WORDS = {
    "mailboxfull": ("As their mailbox is full",),
    "norelaying": ("Due to the following SMTP relay error",),
    "hostunknown": ("As the remote domain doesnt exist",),
}


def _kddi(env: Envelope) -> bool:
    return (
        aligned(env.sender, ("no-reply@", ".dion.ne.jp"))
        or env.headers.get("reply-to") == "no-reply@app.auone-net.jp"
        or env.received("ezweb.ne.jp (")
        or env.received(".au.com (")
    )


def _kddi_refine(f: Facts, about: str, env: Envelope) -> None:
    if env.headers.get("x-spasign") == "NG":
        _set(f, "au (KDDI)", "filtered")
        return
    said = _said(f, about)
    f.command = find_command(said) or f.command
    if f.command == "RCPT":
        _set(f, "au (KDDI)", "userunknown")
        return
    _set(f, "au (KDDI)", _first(_KDDI_WORDS, f"{said} {env.text}"))


# --- Sendmail version 5 --------------------------------------------------------------------------


def _v5sendmail(env: Envelope) -> bool:
    # Sendmail 5 returns the message after "----- Unsent message follows -----" (later versions
    # attach it, with a delivery-status part).
    return env.subject.startswith("Returned mail: ") and (
        "----- Unsent message follows -----" in env.full
        or "----- No message was collected -----" in env.full
    )


def _v5sendmail_refine(f: Facts, about: str, env: Envelope) -> None:
    # "554 <a@b>... Remote protocol error" is the verdict; the server's own reply is the "<<< "
    # line before it and the command the ">>> " line before that, in the same conversation.
    command = response = ""
    marker = f"<{f.address}>... "
    for line in env.text.splitlines():
        if line.startswith("While talking to"):
            command = response = ""
        elif line.startswith(">>> "):
            command = find_command(line)
        elif line.startswith("<<< "):
            response = line[4:].strip()
        elif line[:1] in "45" and marker in line.lower():
            said = line[line.lower().index(marker) + len(marker) :].strip()
            f.diagnosis = f"{said}: {response}" if response else said
            f.command = command or find_command(said) or f.command
            return


# --- Security appliances and ESPs ----------------------------------------------------------------

_POWERMTA_CATEGORIES = {
    "bad-domain": "hostunknown",
    "bad-mailbox": "userunknown",
    "inactive-mailbox": "suspend",
    "message-expired": "expired",
    "no-answer-from-host": "networkerror",
    "policy-related": "policyviolation",
    "quota-issues": "mailboxfull",
    "routing-errors": "systemerror",
    "spam-related": "spamdetected",
}
_POWERMTA_CATEGORY = re.compile(r"^X-PowerMTA-BounceCategory:[ \t]*([a-z-]+)", re.M | re.I)


def _powermta(env: Envelope) -> bool:
    return "Delivery report" in env.subject


def _powermta_refine(f: Facts, about: str, env: Envelope) -> None:
    m = _POWERMTA_CATEGORY.search(f.dsn_block or env.text)
    if m:
        _set(f, "PowerMTA", _POWERMTA_CATEGORIES.get(m.group(1).lower(), ""))


def _mcafee(env: Envelope) -> bool:
    return "Modified by McAfee" in env.headers.get("x-nai-header") and (
        env.subject == "Delivery Status"
    )


def _mcafee_refine(f: Facts, about: str, env: Envelope) -> None:
    words = (" User not exist", " unknown.", "550 Unknown user ", "No such user")
    if any(w in _said(f, about) for w in words):
        _set(f, "McAfee", "userunknown")


_IMAIL_WORDS = {
    "hostunknown": ("Unknown host",),
    "userunknown": ("Unknown user", "Invalid final delivery userid"),
    "mailboxfull": ("User mailbox exceeds allowed size",),
    "virusdetected": ("Requested action not taken: virus detected",),
    "spamdetected": ("Blacklisted URL in message",),
    "expired": ("Delivery failed ",),
}


def _imail(env: Envelope) -> bool:
    return env.subject.startswith("Undeliverable Mail ") or env.headers.get("x-mailer").startswith(
        "<SMTP32 v"
    )


def _imail_refine(f: Facts, about: str, env: Envelope) -> None:
    said = _said(f, about)
    f.command = find_command(said) or f.command
    _set(f, "iMail Server", _first(_IMAIL_WORDS, said))


_OPENSMTPD_WORDS = {
    "expired": ("Envelope expired",),
    "hostunknown": ("Invalid domain name", "Domain does not exist"),
    "notaccept": ("Destination seem to reject all mails",),
    "networkerror": (
        "Address family mismatch on destination MXs",
        "All routes to destination blocked",
        "bad DNS lookup error code",
        "Could not retrieve source address",
        "Loop detected",
        "Network error on destination MXs",
        "No MX found for domain",
        "No MX found for destination",
        "No valid route to remote MX",
        "No valid route to destination",
        "Temporary failure in MX lookup",
    ),
    "securityerror": ("Could not retrieve credentials",),
}


def _opensmtpd(env: Envelope) -> bool:
    return (
        "Delivery status notification" in env.subject
        and "Mailer Daemon <" in env.sender
        and env.received(" (OpenSMTPD) with ")
    )


def _opensmtpd_refine(f: Facts, about: str, env: Envelope) -> None:
    _set(f, "OpenSMTPD", _first(_OPENSMTPD_WORDS, _said(f, about)))


_NOTES_WORDS = {
    "userunknown": (
        "User not listed in public Name & Address Book",
        "ディレクトリのリストにありません",
    ),
    "networkerror": ("Message has exceeded maximum hop count",),
}


def _notes(env: Envelope) -> bool:
    return env.subject.startswith("Undeliverable message")


def _notes_refine(f: Facts, about: str, env: Envelope) -> None:
    _set(f, "HCL Notes", _first(_NOTES_WORDS, f"{_said(f, about)} {env.text}"))


_DOMINO_WORDS = {
    "userunknown": (
        "not listed in Domino Directory",
        "not listed in public Name & Address Book",
        "no se encuentra en el Directorio de Domino",
        "non répertorié dans l'annuaire Domino",
        "Domino ディレクトリには見つかりません",
    ),
    "filtered": ("Cannot route mail to user",),
    "systemerror": ("Several matches found in Domino Directory",),
}


def _domino(env: Envelope) -> bool:
    return env.subject.startswith(("DELIVERY FAILURE:", "DELIVERY_FAILURE:"))


def _domino_refine(f: Facts, about: str, env: Envelope) -> None:
    _set(f, "IBM Domino", _first(_DOMINO_WORDS, _said(f, about)))


_DRAGONFLY_WORDS = {
    "expired": ("Could not deliver for the last ",),
    "hostunknown": ("DNS lookup failure: host ",),
}


def _dragonfly(env: Envelope) -> bool:
    return "Mail delivery failed" in env.subject and env.received(" (DragonFly Mail Agent")


def _dragonfly_refine(f: Facts, about: str, env: Envelope) -> None:
    said = _said(f, about)
    m = re.search(r" did not like our ([^\n:]*)", said)
    if m:
        f.command = find_command(m.group(1)) or f.command
    _set(f, "DragonFly Mail Agent", _first(_DRAGONFLY_WORDS, said))


def _trendmicro(env: Envelope) -> bool:
    return env.sender.startswith(('"InterScan MSS"', '"InterScan Notification"')) or (
        env.subject
        in (
            "Mail could not be delivered",
            "メッセージを配信できません。",
            "メール配信に失敗しました",
        )
    )


def _trendmicro_refine(f: Facts, about: str, env: Envelope) -> None:
    said = _said(f, about)
    m = re.search(r"Sent <<< ([^\n]*)", f"{about}\n{env.text}")
    if m:
        f.command = find_command(m.group(1)) or f.command
    if "Unable to deliver" in said:
        _set(f, "Trend Micro", "userunknown")


def _verizon(env: Envelope) -> bool:
    return env.received(".vtext.com (") and (
        env.sender == "post_master@vtext.com" or aligned(env.sender, ("sysadmin@", ".vzwpix.com"))
    )


def _verizon_refine(f: Facts, about: str, env: Envelope) -> None:
    words = (
        "550 - Requested action not taken: no such user here",
        "No valid recipients for this MM",
    )
    if any(w in f"{_said(f, about)} {env.text}" for w in words):
        _set(f, "Verizon Wireless", "userunknown")


def _messagelabs(env: Envelope) -> bool:
    return (
        "x-msg-ref" in env.headers
        and "MAILER-DAEMON@messagelabs.com" in env.sender
        and env.subject.startswith("Mail Delivery Failure")
    )


def _messagelabs_refine(f: Facts, about: str, env: Envelope) -> None:
    words = {
        "userunknown": ("542 ", " Rejected", "No such user"),
        "securityerror": ("Please turn on SMTP Authentication in your mail client",),
    }
    _set(f, "MessageLabs", _first(words, f.diagnosis))


_FACEBOOK_CODES = {
    "RCP-P1": "userunknown",
    "INT-P1": "userunknown",
    "INT-P3": "userunknown",
    "INT-P4": "userunknown",
    "RCP-P2": "filtered",
    "RCP-P3": "filtered",
    "POL-P1": "blocked",
    "POL-P2": "blocked",
    "MSG-P1": "mesgtoobig",
    "INT-P2": "mesgtoobig",
    "MSG-P2": "contenterror",
    "MSG-P3": "contenterror",
    "POL-P6": "contenterror",
    "POL-P7": "contenterror",
    "POL-P3": "notaccept",
    "POL-P4": "notaccept",
    "POL-T1": "notaccept",
    "POL-T2": "notaccept",
    "POL-T3": "notaccept",
    "DNS-P1": "rejected",
    "DNS-P2": "rejected",
    "DNS-T1": "rejected",
    "DNS-P3": "rejected",
    "DNS-T2": "rejected",
    "CON-T1": "systemerror",
    "RCP-T1": "systemerror",
    "CON-T2": "toomanyconn",
    "CON-T3": "toomanyconn",
    "POL-P5": "virusdetected",
    "RCP-T4": "suspend",
    "MSG-T1": "undefined",
    "CON-T4": "undefined",
}
_FACEBOOK_CODE = re.compile(r"\b([A-Z]{3}-[PT]\d)\b")


def _facebook(env: Envelope) -> bool:
    return env.sender == "Facebook <mailer-daemon@mx.facebook.com>" and (
        env.subject == "Sorry, your message could not be delivered"
    )


def _facebook_refine(f: Facts, about: str, env: Envelope) -> None:
    m = _FACEBOOK_CODE.search(f.diagnosis)
    if m:
        code = m.group(1)
        reason = _FACEBOOK_CODES.get(code, "systemerror" if code.startswith("INT-T") else "")
        _set(f, "Facebook", reason)


def _zoho(env: Envelope) -> bool:
    return env.has("x-zohomail")


def _zoho_refine(f: Facts, about: str, env: Envelope) -> None:
    if "Host not reachable" in _said(f, about):
        _set(f, "Zoho Mail", "expired")


_RECEIVING_SES_WORDS = {
    "filtered": ("Mailbox does not exist",),
    "mesgtoobig": ("Message too large",),
    "mailboxfull": ("Mailbox full",),
    "contenterror": ("Message content rejected",),
}


def _receiving_ses(env: Envelope) -> bool:
    return env.has("x-ses-outgoing") and "This message could not be delivered." in env.text


def _receiving_ses_refine(f: Facts, about: str, env: Envelope) -> None:
    reason = _first(_RECEIVING_SES_WORDS, f.diagnosis) or status_reason(f.status)
    _set(f, "Amazon SES (receiving)", reason)


def _sending_ses(env: Envelope) -> bool:
    return (env.has("x-ses-outgoing") or env.has("x-aws-outgoing")) and (
        "Amazon WorkMail" not in env.headers.get("x-mailer")
    )


def _sending_ses_refine(f: Facts, about: str, env: Envelope) -> None:
    if "Delivery expired" in f.diagnosis:
        _set(f, "Amazon SES", "expired")


def _families(*names: str) -> frozenset[str]:
    return frozenset(names)


# In the order they are tried: the most specific recognition first.
VENDORS: tuple[Vendor, ...] = (
    Vendor(
        "Google Workspace",
        _families("rhost-gsuite", "rfc3464", "lhost-googleworkspace"),
        _workspace,
        _workspace_refine,
    ),
    Vendor("Gmail", _families("lhost-gmail"), _gmail, _gmail_refine),
    Vendor("Google Groups", _families("lhost-googlegroups"), _groups, _groups_refine),
    Vendor(
        "Microsoft 365",
        _families("lhost-office365", "rhost-microsoft"),
        _office365,
        _office365_refine,
        (
            " rejected your message to the following e",
            "Delivery has failed to these recipients or groups:",
            "Falha na entrega a estes destinat",
            "Original Message Details",
            "Uw bericht kan niet worden bezorgd bij de volgende geadresseerden of groepen:",
        ),
    ),
    Vendor(
        "Exchange Server 2007",
        _families("lhost-exchange2007"),
        _exchange2007,
        _exchange2007_refine,
        (
            "Diagnostic information for administrators:",
            "Informations de diagnostic pour les administrateurs",
            "Informazioni di diagnostica per gli amministratori",
        ),
    ),
    Vendor(
        "Exchange Server 2003",
        _families("lhost-exchange2003"),
        _exchange2003,
        _exchange2003_refine,
        ("Your message",),
    ),
    Vendor(
        "Outlook.com",
        _families("lhost-outlook", "rhost-outlook"),
        _outlook,
        _outlook_refine,
        ("This is an automatically generated Delivery Status Notification",),
    ),
    Vendor(
        "au (KDDI)",
        _families("lhost-kddi"),
        _kddi,
        _kddi_refine,
        ("Your mail sent on:", "Your mail attempted to be delivered on:"),
    ),
    Vendor(
        "Facebook",
        _families("rhost-facebook"),
        _facebook,
        _facebook_refine,
        ("This message was created automatically by Facebook.",),
    ),
    Vendor("au EZweb", _families("lhost-ezweb"), _ezweb, _ezweb_refine),
    Vendor("Sendmail 5", _families("lhost-v5sendmail"), _v5sendmail, _v5sendmail_refine),
    Vendor(
        "PowerMTA",
        _families("lhost-powermta"),
        _powermta,
        _powermta_refine,
        ("Hello, this is the mail server on ",),
    ),
    Vendor(
        "McAfee",
        _families("lhost-mcafee"),
        _mcafee,
        _mcafee_refine,
        ("--- The following addresses had delivery problems ---",),
    ),
    Vendor("iMail Server", _families("lhost-imailserver"), _imail, _imail_refine),
    Vendor(
        "OpenSMTPD",
        _families("lhost-opensmtpd"),
        _opensmtpd,
        _opensmtpd_refine,
        ("This is the MAILER-DAEMON, please DO NOT REPLY to this",),
    ),
    Vendor(
        "HCL Notes", _families("lhost-notes"), _notes, _notes_refine, ("------- Failure Reasons ",)
    ),
    Vendor("IBM Domino", _families("lhost-domino"), _domino, _domino_refine, ("Your message",)),
    Vendor(
        "DragonFly Mail Agent",
        _families("lhost-dragonfly"),
        _dragonfly,
        _dragonfly_refine,
        ("This is the DragonFly Mail Agent ",),
    ),
    Vendor("Trend Micro", _families("lhost-trendmicro"), _trendmicro, _trendmicro_refine),
    Vendor(
        "Verizon Wireless",
        _families("lhost-verizon"),
        _verizon,
        _verizon_refine,
        (
            "Error: ",
            "Message could not be delivered to mobile",
        ),
    ),
    Vendor("MessageLabs", _families("rhost-messagelabs"), _messagelabs, _messagelabs_refine),
    Vendor(
        "Zoho Mail",
        _families("lhost-zoho"),
        _zoho,
        _zoho_refine,
        ("This message was created automatically by mail delivery",),
    ),
    Vendor(
        "Amazon SES (receiving)",
        _families("lhost-receivingses"),
        _receiving_ses,
        _receiving_ses_refine,
    ),
    Vendor(
        "Amazon SES",
        _families("lhost-amazonses"),
        _sending_ses,
        _sending_ses_refine,
        (
            "The following message to <",
            "An error occurred while trying to deliver the mail ",
        ),
    ),
    Vendor("qmail", _families("lhost-qmail"), _qmail, _qmail_refine, ("Hi. This is the qmail",)),
    Vendor(
        "Exim",
        _families("lhost-exim", "lhost-mailru"),
        _exim,
        _exim_refine,
        (
            "This message was created automatically by mail delivery software.",
            "A message that you sent was rejected by the local scannning code",
            "A message that you sent contained one or more recipient addresses ",
            "A message that you sent could not be delivered to all of its recipients",
            " has been frozen",
            " was frozen on arrival",
            " router encountered the following error(s):",
        ),
    ),
)


def vendor_of(env: Envelope) -> Vendor | None:
    """The first vendor whose headers and report words this bounce carries."""
    check = any_held_out()
    for vendor in VENDORS:
        if (check and not enabled(vendor.families)) or not vendor.matches(env):
            continue
        if not vendor.markers or any(m in env.full for m in vendor.markers):
            return vendor
    return None
