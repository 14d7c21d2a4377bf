"""The receiving provider's own vocabulary: replies documented by a few large mail services.

When the receiving host (or, failing that, the recipient's domain) belongs to one of these
providers, its documented error codes and sentences name the reason more precisely than the
general phrases do. These are the providers Sisimai 5.1 knows, with the tables their postmaster
pages publish.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

from .reasons import Facts, Verdict, find_reply
from .rules import enabled

Rule = Callable[[Facts], str]


def _first_phrase(table: Mapping[str, tuple[str, ...]], lowered: str) -> str:
    for reason, phrases in table.items():
        for text in phrases:
            if text in lowered:
                return reason
    return ""


# --- Apple iCloud Mail -------------------------------------------------------------------------
_APPLE = {
    "authfailure": ("s dmarc policy", "blocked for failing both spf and dkim autentication checks"),
    "blocked": (
        "rejected due to having a domain present in the spamhaus",
        "rejected due to listing in spamhaus",
        "blocked - see https://support.proofpoint.com/dnsbl-lookup",
        "not accepting connections",
    ),
    "hasmoved": ("recipient no longer on server",),
    "mailboxfull": ("user is over quota",),
    "norelaying": ("relay access denied",),
    "notaccept": ("host/domain does not accept mail",),
    "policyviolation": ("due to local policy",),
    "rejected": ("sender address rejected",),
    "speeding": ("due to excessive volume",),
    "userunknown": ("inactive email address", "user does not exist", "unknown or illegal alias"),
}


def _apple(f: Facts) -> str:
    return _first_phrase(_APPLE, f.diagnosis.lower())


# --- Cox ---------------------------------------------------------------------------------------
_COX_CODES = {
    "CXBL": "blocked",
    "CXDNS": "requireptr",
    "CXSNDR": "authfailure",
    "CXSMTP": "rejected",
    "CXCNCT": "toomanyconn",
    "CXMXRT": "toomanyconn",
    "CDRBL": "blocked",
    "CXTHRT": "securityerror",
    "CXMJ": "securityerror",
    "URLBL011": "spamdetected",
    "URLBL101": "spamdetected",
    "URLBL110": "spamdetected",
    "URLBL1001": "spamdetected",
}
_COX = {
    "blocked": ("cox too many bad commands from", "too many invalid recipients"),
    "requireptr": ("dns check failure - try again later", "rejected - no rdns"),
    "policyviolation": ("esmtp no data before greeting", "attachment extension is forbidden"),
    "rejected": ("sender rejected",),
    "systemerror": ("esmtp server temporarily not available",),
    "toomanyconn": (
        "too many sessions from",
        "requested action aborted: try again later",
        "message threshold exceeded",
    ),
    "userunknown": ("recipient rejected",),
}
_COX_AUP = re.compile(r"AUP#([0-9A-Z]+)")


def _cox(f: Facts) -> str:
    m = _COX_AUP.search(f.diagnosis)
    if m:
        code = m.group(1)
        found = "blocked" if code.startswith("IPBL") else _COX_CODES.get(code, "")
        if found:
            return found
    return _first_phrase(_COX, f.diagnosis.lower())


# --- Orange and La Poste -------------------------------------------------------------------------
_FRANCE_CODES = {
    "101": "blocked",
    "102": "blocked",
    "103": "blocked",
    "104": "toomanyconn",
    "305": "securityerror",
    "401": "blocked",
    "402": "securityerror",
    "403": "rejected",
    "405": "rejected",
    "415": "rejected",
    "416": "userunknown",
    "417": "mailboxfull",
    "418": "userunknown",
    "420": "suspend",
    "421": "rejected",
    "426": "suspend",
    "505": "systemerror",
    "506": "spamdetected",
    "510": "blocked",
    "514": "mesgtoobig",
    "517": "policyviolation",
    "630": "policyviolation",
    "999": "blocked",
}
_FRANCE_REF = re.compile(r"\b(?:LPNAAA|LPN|OFR|OUK)(?:_(\d{3})|\d{3}[-_](\d{3}))\b", re.I)


def _france(f: Facts) -> str:
    m = _FRANCE_REF.search(f.diagnosis)
    if not m:
        return ""
    return _FRANCE_CODES.get(m.group(1) or m.group(2), "undefined")


# --- GoDaddy -----------------------------------------------------------------------------------
_GODADDY_CODES = {
    "IB401": "securityerror",
    "IB501": "notcompliantrfc",
    "IB502": "notcompliantrfc",
    "IB506": "rejected",
    "IB508": "authfailure",
    "IB108": "requireptr",
    "IB212": "spamdetected",
    "IB705": "virusdetected",
    "IB605": "toomanyconn",
    "IB007": "toomanyconn",
    "IB101": "speeding",
    "IB110": "blocked",
    "IB111": "blocked",
    "IB112": "blocked",
    "IB113": "blocked",
    "IB504": "speeding",
    "IB510": "speeding",
    "IB607": "speeding",
    "IB103": "badreputation",
    "IB104": "blocked",
    "IB105": "blocked",
    "IB106": "blocked",
}
_GODADDY = {
    "blocked": ("rbl reject", "www.spamhaus.org/query/bl?ip="),
    "expired": ("has been in the queue too long", "delivery timeout"),
    "mailboxfull": ("account storage limit",),
    "spamdetected": ("message rejected for spam or virus content",),
    "suspend": ("account disabled",),
    "systemerror": ("message is looping",),
    "userunknown": ("recipient not found", "account does not exist"),
}


def _godaddy(f: Facts) -> str:
    at = f.diagnosis.find(" IB")
    if at > 1:
        found = _GODADDY_CODES.get(f.diagnosis[at + 1 : at + 6], "")
        if found:
            return found
    return _first_phrase(_GODADDY, f.diagnosis.lower())


# --- Google (Gmail's own MX) --------------------------------------------------------------------
# (reason, reply code, enhanced status, words): the reply's last two digits, the status without
# its class and the words must all agree.
_GOOGLE: tuple[tuple[str, str, str, str], ...] = (
    ("authfailure", "451", "4.7.24", "the spf record of the sending domain"),
    ("authfailure", "550", "5.7.24", "the spf record of the sending domain"),
    ("authfailure", "421", "4.7.26", "senders to authenticate with either spf or dkim"),
    ("authfailure", "550", "5.7.26", "senders to authenticate with either spf or dkim"),
    ("authfailure", "550", "5.7.26", "fails to pass spf checks for an spf record with a hard fail"),
    ("authfailure", "550", "5.7.26", "has an spf record with a hard fail policy"),
    ("authfailure", "451", "4.7.26", "is not accepted due to domain's dmarc policy"),
    ("authfailure", "550", "5.7.26", "is not accepted due to domain's dmarc policy"),
    ("authfailure", "550", "5.7.1", "fails to pass authentication checks"),
    ("authfailure", "550", "5.7.26", "fails to pass authentication checks"),
    ("authfailure", "421", "4.7.27", "senders to authenticate with spf"),
    ("authfailure", "421", "4.7.27", "senders to authenticate their email with spf"),
    ("authfailure", "550", "5.7.27", "senders to authenticate with spf"),
    ("authfailure", "421", "4.7.30", "senders to authenticate their email with dkim"),
    ("authfailure", "550", "5.7.30", "senders to authenticate with dkim"),
    ("authfailure", "421", "4.7.32", "aligned with either the authenticated spf or dkim"),
    ("authfailure", "421", "5.7.32", "aligned with either the authenticated spf or dkim"),
    ("authfailure", "421", "4.7.40", "to add a dmarc record to "),
    ("badreputation", "421", "4.7.0", "very low reputation of the sending ip address"),
    ("badreputation", "421", "4.7.0", "very low reputation of the sending domain"),
    ("badreputation", "550", "5.7.1", "due to the very low reputation of the sending ip address"),
    ("badreputation", "550", "5.7.1", "due to the very low reputation of the sending domain"),
    ("blocked", "421", "4.7.0", "ip not in whitelist for rcpt domain"),
    ("blocked", "421", "4.7.0", "try again later, closing connection."),
    ("blocked", "501", "5.5.4", "empty helo/ehlo argument not allowed"),
    ("blocked", "501", "5.5.4", "helo/ehlo argument is invalid"),
    ("blocked", "421", "4.7.0", "an unusual rate of unsolicited mail"),
    ("blocked", "421", "4.7.28", "an unusual rate of mail"),
    ("blocked", "550", "5.7.1", "an unusual rate of unsolicited mail"),
    ("blocked", "550", "5.7.28", "an unusual rate of unsolicited mail"),
    ("exceedlimit", "552", "5.2.3", "exceeded google's message size limits"),
    ("exceedlimit", "552", "5.3.4", "exceeds google's limit of limit attachments."),
    ("exceedlimit", "552", "5.3.4", "your message exceeded google's message header size limits"),
    ("exceedlimit", "552", "5.3.4", "bytes per individual header size"),
    ("exceedlimit", "552", "5.3.4", "exceeds google's header name limit of"),
    ("exceedlimit", "552", "5.3.4", "exceeds google's message header size limit"),
    ("expired", "421", "4.7.0", "connection expired"),
    ("expired", "451", "4.4.2", "timeout - closing connection"),
    ("securityerror", "530", "5.7.0", "must issue a starttls command first"),
    ("securityerror", "454", "5.5.1", "starttls may not be repeated"),
    ("securityerror", "421", "4.7.0", "tls required for rcpt domain"),
    ("securityerror", "421", "4.7.29", "senders to use tls/ssl for smtp"),
    ("securityerror", "550", "5.7.29", "senders to use tls/ssl for smtp"),
    ("mailboxfull", "452", "4.2.2", "inbox is out of storage space"),
    ("mailboxfull", "552", "5.2.2", "inbox is out of storage space and inactive"),
    ("mailboxfull", "452", "4.2.2", "is over quota"),
    ("mailboxfull", "552", "5.2.2", "is over quota"),
    ("mailboxfull", "550", "5.7.1", "email quota exceeded"),
    ("mesgtoobig", "552", "5.3.4", "exceeded google's message size limits"),
    ("mesgtoobig", "552", "5.3.4", "exceeds google's message size limit of"),
    ("networkerror", "554", "5.4.6", "message exceeded 50 hops"),
    ("networkerror", "554", "5.6.0", "message exceeded 50 hops"),
    ("norelaying", "550", "5.7.0", "mail relay denied"),
    ("norelaying", "550", "5.7.1", "invalid credentials for relay"),
    ("norelaying", "550", "5.7.1", "is not authorized to send email directly to our servers"),
    ("notcompliantrfc", "550", "5.7.1", "missing a valid address in the from: header"),
    ("notcompliantrfc", "550", "5.7.1", "multiple addresses in from: header are not accepted"),
    ("notcompliantrfc", "550", "5.7.1", "is not rfc 5322 compliant"),
    ("notcompliantrfc", "550", "5.7.1", "missing a valid message-id: header"),
    ("notcompliantrfc", "550", "5.7.1", "contains a unicode character in a disallowed header"),
    ("notcompliantrfc", "550", "5.7.1", "encoded-word syntax is not permitted"),
    ("notcompliantrfc", "553", "5.1.7", "is not a valid rfc 5321 address"),
    ("notcompliantrfc", "554", "5.6.0", "mail message is malformed"),
    ("policyviolation", "552", "5.7.0", "illegal attachment on your message"),
    (
        "policyviolation",
        "552",
        "5.7.0",
        "blocked because its content presents a potential security issue",
    ),
    (
        "policyviolation",
        "550",
        "5.7.1",
        "you are sending to (or from) has a policy that prohibited",
    ),
    ("policyviolation", "421", "4.7.28", "sending messages with the same message-id:"),
    ("rejected", "550", "5.7.0", "mail sending denied"),
    ("rejected", "550", "5.7.1", "unauthenticated email is not accepted"),
    ("requireptr", "421", "4.7.0", "does not have a ptr record"),
    ("requireptr", "421", "4.7.23", " have a ptr record, or the ptr record"),
    (
        "requireptr",
        "550",
        "5.7.1",
        "does not meet ipv6 sending guidelines regarding ptr records and authentication",
    ),
    ("requireptr", "550", "5.7.25", "does not have a ptr record"),
    ("requireptr", "550", "5.7.25", "does not match the ip address of the hostname"),
    ("securityerror", "454", "4.7.0", "too many login attempts"),
    ("securityerror", "501", "5.5.2", "cannot decode response"),
    ("securityerror", "503", "5.7.0", "no identity changes permitted"),
    ("securityerror", "530", "5.5.1", "authentication required."),
    ("securityerror", "530", "5.7.0", "authentication required."),
    ("securityerror", "535", "5.7.1", "application-specific password required"),
    ("securityerror", "535", "5.7.9", "application-specific password required"),
    ("securityerror", "535", "5.7.1", "please log in with your web browser"),
    ("securityerror", "534", "5.7.9", "please log in with your web browser"),
    ("securityerror", "534", "5.7.14", "please log in through your web browser"),
    ("securityerror", "535", "5.7.1", "username and password not accepted"),
    ("securityerror", "535", "5.7.8", "username and password not accepted"),
    ("spamdetected", "421", "4.7.0", "due to the nature of the content or the links within"),
    ("spamdetected", "550", "5.7.1", "likely unsolicited mail"),
    ("speeding", "450", "4.2.1", "is receiving mail too quickly"),
    ("speeding", "450", "4.2.1", "peak smtp relay limit exceeded for customer"),
    ("speeding", "450", "4.2.1", "rate that prevents additional messages from being delivered"),
    ("speeding", "550", "5.2.1", "rate that prevents additional messages from being delivered"),
    ("speeding", "550", "5.4.5", "daily sending quota exceeded"),
    ("speeding", "550", "5.4.5", "daily user sending limit exceeded"),
    ("speeding", "550", "5.4.5", "daily smtp relay limit exceeded for"),
    ("speeding", "550", "5.7.1", "daily smtp relay limit exceeded for"),
    ("speeding", "550", "5.7.1", "daily smtp relay sending limit exceeded for"),
    ("speeding", "550", "5.7.1", "this mail has been rate limited"),
    ("suspend", "550", "5.2.1", "account that you tried to reach is disabled"),
    ("suspend", "550", "5.2.1", "account that you tried to reach is inactive"),
    ("syntaxerror", "451", "4.5.0", "smtp protocol violation"),
    ("syntaxerror", "454", "4.5.0", "smtp protocol violation"),
    ("syntaxerror", "525", "5.7.10", "smtp protocol violation"),
    ("syntaxerror", "535", "5.5.4", "optional argument not permitted"),
    ("syntaxerror", "501", "5.7.11", "syntax error"),
    ("syntaxerror", "501", "5.5.2", "syntax error"),
    ("syntaxerror", "555", "5.5.2", "syntax error"),
    ("syntaxerror", "502", "5.5.1", "too many unrecognized commands, goodbye"),
    ("syntaxerror", "502", "5.5.1", "unimplemented command"),
    ("syntaxerror", "502", "5.5.1", "unrecognized command"),
    ("syntaxerror", "503", "5.5.1", "bad sequence of commands"),
    ("syntaxerror", "503", "5.5.1", "ehlo/helo first"),
    ("syntaxerror", "503", "5.5.1", "mail first"),
    ("syntaxerror", "503", "5.5.1", "rcpt first"),
    ("syntaxerror", "503", "5.5.1", "no data after bdat"),
    ("syntaxerror", "504", "5.7.4", "unrecognized authentication type"),
    ("syntaxerror", "504", "5.7.4", "xoauth is no longer supported"),
    ("syntaxerror", "554", "5.7.0", "too many unauthenticated commands"),
    ("systemerror", "421", "4.3.0", "temporary system problem"),
    ("systemerror", "421", "4.7.0", "temporary system problem"),
    ("systemerror", "421", "4.4.5", "server busy"),
    ("systemerror", "451", "4.3.0", "multiple destination domains per transaction is unsupported"),
    ("systemerror", "451", "4.3.0", "mail server has temporarily rejected this message"),
    ("systemerror", "451", "4.3.0", "mail server temporarily rejected message"),
    ("systemerror", "452", "4.5.3", "domain policy size per transaction exceeded"),
    ("systemerror", "454", "4.7.0", "cannot authenticate due to temporary system problem"),
    ("toomanyconn", "452", "4.5.3", "your message has too many recipients"),
    ("toomanyconn", "550", "5.5.3", "too many recipients for this sender"),
    ("userunknown", "550", "5.1.1", "the email account that you tried to reach does not exist"),
    ("userunknown", "553", "5.1.2", "we weren't able to find the recipient domain"),
    ("userunknown", "553", "5.1.3", "is not a valid rfc 5321 address"),
)


def _google(f: Facts) -> str:
    if not f.diagnosis or len(f.reply) != 3 or len(f.status) < 5:
        return ""
    lowered = f.diagnosis.lower()
    for reason, reply, status, words in _GOOGLE:
        if words in lowered and reply[1:] == f.reply[1:] and status[2:] == f.status[2:]:
            return reason
    return ""


# --- i.ua ---------------------------------------------------------------------------------------
_IUA_CODES = {
    "1": "norelaying",
    "2": "userunknown",
    "3": "suspend",
    "4": "mailboxfull",
    "5": "toomanyconn",
    "6": "norelaying",
    "7": "blocked",
    "8": "rejected",
    "9": "blocked",
    "10": "filtered",
}
_IUA_REF = re.compile(r"\.i\.ua/err/(\d{1,2})")


def _iua(f: Facts) -> str:
    m = _IUA_REF.search(f.diagnosis.lower())
    return _IUA_CODES.get(m.group(1), "") if m else ""


# --- au (KDDI) ----------------------------------------------------------------------------------


def _kddi(f: Facts) -> str:
    if "550 : User unknown" in f.diagnosis:
        return "filtered"
    if ">: User unknown" in f.diagnosis:
        return "userunknown"
    return ""


# --- Microsoft Exchange Online and Exchange Server ----------------------------------------------
# (reason, status, low, high, words): an exact status when low == high, otherwise a status
# prefix and a range for its last number.
_MICROSOFT: tuple[tuple[str, str, int, int, str], ...] = (
    (
        "authfailure",
        "4.7.26",
        0,
        0,
        "must pass either spf or dkim validation, this message is not signed",
    ),
    (
        "authfailure",
        "5.7.23",
        0,
        0,
        "the message was rejected because of sender policy framework violation",
    ),
    ("authfailure", "5.7.509", 0, 0, "does not pass dmarc verification"),
    ("badreputation", "4.7.650", 0, 0, "has been temporarily rate limited due to ip reputation"),
    ("blocked", "4.4.2", 0, 0, "connection dropped"),
    ("blocked", "4.7.", 850, 899, "access denied, please try again later"),
    ("blocked", "5.7.25", 0, 0, "must have a reverse dns record"),
    ("blocked", "5.7.506", 0, 0, "access denied, bad helo"),
    ("blocked", "5.7.507", 0, 0, "access denied, rejected by recipient"),
    ("blocked", "5.7.510", 0, 0, "does not accept email over ipv6"),
    ("blocked", "5.7.511", 0, 0, "access denied, banned sender"),
    ("blocked", "5.7.513", 0, 0, "using customer block list"),
    ("blocked", "5.7.", 606, 649, "access denied, banned sending ip "),
    ("blocked", "4.7.", 500, 699, "access denied, please try again later"),
    ("blocked", "5.5.4", 0, 0, "invalid domain name"),
    ("blocked", "5.7.51", 0, 0, "restrictdomainstoipaddresses or restrictdomainstocertificate"),
    ("blocked", "5.7.1", 0, 0, "part of their network is on our block list (s3150)"),
    ("contenterror", "5.3.0", 0, 0, "too many related errors"),
    ("contenterror", "5.6.11", 0, 0, "invalid characters"),
    ("contenterror", "5.4.11", 0, 0, "agent generated message depth exceeded"),
    ("contenterror", "5.5.6", 0, 0, "invalid message content"),
    (
        "exceedlimit",
        "5.2.3",
        0,
        0,
        "resolver.rst.recipsizelimit; message too large for this recipient",
    ),
    ("expired", "4.4.1", 0, 0, "connection timed out"),
    ("expired", "4.4.7", 0, 0, "message delayed"),
    ("expired", "4.4.7", 0, 0, "queue expired; message expired"),
    ("expired", "4.4.7", 0, 0, "message expired"),
    ("expired", "5.4.300", 0, 0, "message expired"),
    ("mailboxfull", "5.2.2", 0, 0, "mailbox full"),
    ("mesgtoobig", "5.3.4", 0, 0, "message size exceeds fixed maximum message size"),
    ("mesgtoobig", "5.3.4", 0, 0, "message too big for system"),
    ("networkerror", "5.4.4", 0, 0, "smtpsend.dns.nonexistentdomain; nonexistent domain"),
    ("networkerror", "5.4.6", 0, 0, "hop count exceeded - possible mail loop"),
    ("networkerror", "4.4.316", 0, 0, "connection refused"),
    ("networkerror", "5.4.4", 0, 0, "invalid arguments"),
    ("networkerror", "5.4.6", 0, 0, "routing loop detected"),
    ("networkerror", "5.4.14", 0, 0, "routing loop detected"),
    ("norelaying", "5.7.1", 0, 0, "unable to relay"),
    ("norelaying", "5.4.1", 0, 0, "relay access denied"),
    ("norelaying", "5.7.64", 0, 0, "tenantattribution; relay access denied"),
    ("norelaying", "5.4.310", 0, 0, "does not exist"),
    ("notaccept", "4.3.2", 0, 0, "system not accepting network messages"),
    ("notaccept", "5.3.2", 0, 0, "storedrv.deliver: missing or bad storedriver mdb properties"),
    ("policyviolation", "5.0.350", 0, 0, "x-dg-ref header is too long"),
    (
        "policyviolation",
        "5.0.350",
        0,
        0,
        "requested action not taken: policy violation detected (as345)",
    ),
    ("policyviolation", "5.7.", 900, 999, "delivery not authorized, message refused"),
    ("rejected", "5.1.7", 0, 0, "invalid address"),
    ("rejected", "5.1.7", 0, 0, "unknown sender address"),
    ("rejected", "5.1.0", 0, 0, "sender denied"),
    ("rejected", "5.1.8", 0, 0, "access denied, bad outbound sender"),
    ("rejected", "5.7.1", 0, 0, "delivery not authorized"),
    ("rejected", "5.7.12", 0, 0, "sender was not authenticated by organization"),
    ("rejected", "5.7.124", 0, 0, "sender not in allowed-senders list"),
    ("rejected", "5.7.133", 0, 0, "sender not authenticated for group"),
    ("rejected", "5.7.134", 0, 0, "sender was not authenticated for mailbox"),
    ("rejected", "5.7.13", 0, 0, "sender was not authenticated for public folder"),
    ("rejected", "5.7.135", 0, 0, "sender was not authenticated for public folder"),
    ("rejected", "5.7.136", 0, 0, "sender was not authenticated"),
    ("rejected", "5.7.", 501, 503, "access denied, spam abuse detected"),
    (
        "rejected",
        "5.7.512",
        0,
        0,
        "access denied, message must be rfc 5322 section 3.6.2 compliant",
    ),
    (
        "rejected",
        "5.7.750",
        0,
        0,
        "service unavailable. client blocked from sending from unregistered domains",
    ),
    ("rejected", "5.7.", 501, 503, "access denied, banned sender"),
    ("securityerror", "5.7.3", 0, 0, "cannot achieve exchange server authentication"),
    ("securityerror", "5.7.3", 0, 0, "not authorized"),
    ("securityerror", "4.4.317", 0, 0, "starttls is required to send mail"),
    ("securityerror", "5.4.317", 0, 0, "starttls is required to send mail"),
    (
        "securityerror",
        "4.7.321",
        0,
        0,
        "starttls-not-supported: destination mail server must support tls to receive mail",
    ),
    (
        "securityerror",
        "5.7.321",
        0,
        0,
        "starttls-not-supported: destination mail server must support tls to receive mail",
    ),
    ("securityerror", "5.7.1", 0, 0, "client was not authenticated"),
    (
        "securityerror",
        "5.7.57",
        0,
        0,
        "client was not authenticated to send anonymous mail during mail from",
    ),
    ("spamdetected", "5.2.1", 0, 0, "content filter agent quarantined this message"),
    ("speeding", "4.3.2", 0, 0, "storedrv.deliver; recipient thread limit exceeded"),
    (
        "speeding",
        "5.1.90",
        0,
        0,
        "your message can't be sent because you've reached your daily limit for message recipients",
    ),
    ("speeding", "5.2.2", 0, 0, "submission quota exceeded"),
    (
        "speeding",
        "5.2.121",
        0,
        0,
        "recipient's per hour message receive limit from specific sender exceeded",
    ),
    ("speeding", "5.2.122", 0, 0, "recipient's per hour message receive limit exceeded"),
    ("speeding", "5.7.508", 0, 0, "has exceeded permitted limits within"),
    ("speeding", "5.7.", 700, 749, "access denied, tenant has exceeded threshold"),
    ("speeding", "5.7.", 700, 749, "access denied, traffic not accepted from this ip"),
    ("suspend", "5.7.504", 0, 0, "recipient address rejected: access denied"),
    ("suspend", "5.7.505", 0, 0, "access denied, banned recipient"),
    ("suspend", "5.2.1", 0, 0, "mailbox cannot be accessed"),
    ("syntaxerror", "5.3.3", 0, 0, "unrecognized command"),
    ("syntaxerror", "5.5.2", 0, 0, "send hello first"),
    ("systemerror", "4.3.2", 0, 0, "service not available"),
    ("systemerror", "4.3.2", 0, 0, "service not active"),
    ("systemerror", "5.3.5", 0, 0, "system incorrectly configured"),
    ("systemerror", "5.0.0", 0, 0, "helo / ehlo requires domain address"),
    ("systemerror", "5.1.4", 0, 0, "destination mailbox address ambiguous"),
    ("systemerror", "5.2.4", 0, 0, "mailing list expansion problem"),
    ("systemerror", "5.2.14", 0, 0, "misconfigured forwarding address"),
    ("systemerror", "4.4.3", 0, 0, "temporary server error. please try again later attr18"),
    ("systemerror", "4.7.0", 0, 0, "temporary server error. please try again later. prx4 nexthop:"),
    (
        "systemerror",
        "4.4.24",
        0,
        0,
        "message failed to be replicated: insufficient system resource:",
    ),
    ("systemerror", "4.4.318", 0, 0, "(suspiciousremoteservererror)"),
    ("systemerror", "5.4.318", 0, 0, "(suspiciousremoteservererror)"),
    ("systemerror", "4.7.500", 0, 0, "server busy. please try again later from "),
    ("systemerror", "4.7.700", 0, 0, "pfa agent busy, please try again."),
    ("systemfull", "4.3.1", 0, 0, "insufficient system resources"),
    ("toomanyconn", "5.5.3", 0, 0, "too many recipients"),
    ("toomanyconn", "4.5.3", 0, 0, "too many recipients"),
    ("toomanyconn", "5.2.122", 0, 0, "the recipient has exceeded their limit for"),
    ("userunknown", "5.1.1", 0, 0, "resolver.adr.exrecipnotfound; not found"),
    ("userunknown", "5.1.1", 0, 0, "user unknown"),
    ("userunknown", "5.1.3", 0, 0, "storedrv.submit; invalid recipient address"),
    ("userunknown", "5.1.", 4, 5, "recipient address reserved by rfc 2606"),
    ("userunknown", "5.1.6", 0, 0, "recipient addresses in single label domains not accepted"),
    ("userunknown", "5.1.1", 0, 0, "bad destination mailbox address"),
    ("userunknown", "5.1.10", 0, 0, "recipient not found"),
    ("userunknown", "5.4.1", 0, 0, "recipient address rejected: access denied"),
    ("userunknown", "5.5.0", 0, 0, "requested action not taken: mailbox unavailable"),
    ("userunknown", "5.1.2", 0, 0, "invalid x.400 address"),
)


def _microsoft(f: Facts) -> str:
    status = f.status
    if len(status) < 5:
        return ""
    try:
        last = int(status.rsplit(".", 1)[1])
    except ValueError:
        return ""
    lowered = f.diagnosis.lower()
    for reason, code, low, high, words in _MICROSOFT:
        if low == high:
            if status != code:
                continue
        elif not status.startswith(code) or not low <= last <= high:
            continue
        if words in lowered:
            return reason
    return ""


# --- Mimecast -----------------------------------------------------------------------------------
_MIMECAST: tuple[tuple[str, str, str], ...] = (
    ("authfailure", "550", "spf sender invalid - envelope rejected"),
    ("authfailure", "550", "dkim sender invalid - envelope rejected"),
    ("authfailure", "550", "dmarc sender invalid - envelope rejected"),
    ("badreputation", "451", "internal resources are temporarily unavailable"),
    ("badreputation", "550", "local ct ip reputation - (reject)"),
    ("blocked", "421", "sender address blocked"),
    ("blocked", "451", "recipient temporarily unavailable"),
    ("blocked", "451", "ip temporarily blacklisted"),
    ("expired", "550", "journal messages past the expiration"),
    ("mesgtoobig", "554", "maximum email size exceeded"),
    ("networkerror", "451", "the incorrect hostname used for inbounds"),
    ("networkerror", "550", "the incorrect hostname used for inbounds"),
    ("networkerror", "554", "mail loop detected"),
    ("norelaying", "451", "open relay not allowed"),
    ("norelaying", "451", "open relay is not allowed"),
    ("notaccept", "451", "account inbounds disabled"),
    ("onhold", "451", "account outbounds disabled"),
    ("onhold", "451", "hostname is not authorized"),
    ("onhold", "550", "journal message past expiration"),
    ("policyviolation", "550", "anti-spoofing policy - inbound not allowed"),
    ("policyviolation", "550", "rejected by header-based anti-spoofing policy"),
    ("policyviolation", "550", "message bounced due to content examination policy"),
    ("policyviolation", "554", "host network not allowed"),
    ("policyviolation", "554", "host network, not allowed"),
    ("rejected", "550", "administrative prohibition envelope blocked"),
    ("rejected", "550", "envelope blocked - user entry"),
    ("rejected", "550", "envelope blocked - user domain entry"),
    (
        "rejected",
        "550",
        "rejected by header-based manually blocked senders - block for manual block",
    ),
    ("rejected", "550", "rejected by header-based blocked senders - block policy for header from"),
    ("rejected", "550", "envelope rejected - block policy for envelope from address"),
    ("securityerror", "535", "incorrect authentication data"),
    ("securityerror", "550", "submitter failed to disabled"),
    ("securityerror", "550", "submitter failed to authenticate"),
    ("securityerror", "553", "this route requires encryption (tls)"),
    ("securityerror", "553", "this route requires tls version 1.2 or greater"),
    ("securityerror", "553", "this route requires high-strength ciphers"),
    ("securityerror", "554", "configuration is invalid for this certificate"),
    ("systemerror", "451", "unable to process connection at this time"),
    ("systemerror", "451", "message ended early"),
    ("systemerror", "451", "unable to process command"),
    ("systemerror", "451", "unable to process an email at this time"),
    ("toomanyconn", "451", "account service is temporarily unavailable"),
    ("toomanyconn", "452", "too many recipients"),
    ("toomanyconn", "550", "exceeding outbound thread limit"),
    ("userunknown", "501", "invalid address"),
    ("userunknown", "503", "user unknown"),
    ("userunknown", "550", "invalid recipient"),
    ("virusdetected", "554", "email rejected due to security policies"),
)


def _mimecast(f: Facts) -> str:
    reply = f.reply or find_reply(f.diagnosis)
    if len(reply) != 3:
        return ""
    lowered = f.diagnosis.lower()
    for reason, code, words in _MIMECAST:
        if code == reply and words in lowered:
            return reason
    return ""


# --- NTT docomo ---------------------------------------------------------------------------------
_DOCOMO = {
    "mailboxfull": ("552 too much mail data",),
    "toomanyconn": ("552 too many recipients",),
    "syntaxerror": ("503 bad sequence of commands", "504 command parameter not implemented"),
}


def _docomo(f: Facts) -> str:
    if f.status in ("5.1.1", "5.0.911"):
        return "userunknown"
    if f.status == "5.2.0":
        return "filtered"
    found = _first_phrase(_DOCOMO, f.diagnosis.lower())
    if found:
        return found
    if f.status == "5.0.0":
        if f.command == "RCPT":
            return "userunknown"
        if f.command == "DATA":
            return "rejected"
    return ""


# --- Spectrum (Charter) -------------------------------------------------------------------------
_SPECTRUM: tuple[tuple[int, int, str], ...] = (
    (1000, 0, "blocked"),
    (1010, 0, "rejected"),
    (1020, 1080, "rejected"),
    (1090, 0, "systemerror"),
    (1100, 1150, "requireptr"),
    (1160, 1190, "policyviolation"),
    (1200, 1210, "blocked"),
    (1220, 1250, "blocked"),
    (1260, 0, "networkerror"),
    (1300, 1340, "toomanyconn"),
    (1350, 1490, "speeding"),
    (1500, 0, "rejected"),
    (1520, 0, "rejected"),
    (1530, 0, "mesgtoobig"),
    (1540, 0, "speeding"),
    (1550, 0, "speeding"),
    (1560, 0, "policyviolation"),
    (1580, 0, "speeding"),
)
_SPECTRUM_REF = re.compile(r"AUP#[-A-Za-z]*(\d{4})")


def _spectrum(f: Facts) -> str:
    m = _SPECTRUM_REF.search(f.diagnosis)
    number = int(m.group(1)) if m else 0
    for low, high, reason in _SPECTRUM:
        if number == low or (high and low <= number <= high):
            return reason
    return ""


# --- Tencent (QQ) -------------------------------------------------------------------------------
_TENCENT = {
    "authfailure": ("spf check failed", "dmarc check failed"),
    "blocked": ("suspected bounce attacks", "suspected spam ip", "connection denied"),
    "mesgtoobig": ("message too large",),
    "rejected": ("suspected spam", "mail is rejected by recipients"),
    "spamdetected": ("spam is embedded in the email", "mail content denied"),
    "speeding": ("mailbox unavailable or access denined",),
    "suspend": ("is a deactivated mailbox",),
    "syntaxerror": ("bad address syntax",),
    "toomanyconn": (
        "ip frequency limited",
        "domain frequency limited",
        "sender frequency limited",
        "connection frequency limited",
    ),
    "userunknown": ("mailbox not found",),
}


def _tencent(f: Facts) -> str:
    return _first_phrase(_TENCENT, f.diagnosis.lower())


# --- Yahoo Inc. ---------------------------------------------------------------------------------
_YAHOO = {
    "authfailure": ("yahoo requires all senders to authenticate with either spf or dkim",),
    "badreputation": ("temporarily deferred due to unexpected volume or user complaints",),
    "blocked": (
        " because the ip is in spamhaus's list;",
        "not accepted from ip addresses on spamhaus xbl",
    ),
    "norelaying": ("relaying denied for ",),
    "notcompliantrfc": ("headers are not rfc compliant",),
    "policyviolation": ("not accepted for policy reasons",),
    "rejected": (" will be permanently deferred",),
    "speeding": ("user is receiving mail too quickly",),
    "suspend": (" is no longer valid.", "this mailbox is disabled"),
    "syntaxerror": ("syntax error in parameters or arguments",),
    "toomanyconn": ("max message per connection reached",),
    "userunknown": ("dd this user doesn't have a ", "mailbox not found"),
}


def _yahoo(f: Facts) -> str:
    return _first_phrase(_YAHOO, f.diagnosis.lower())


# Provider, host name parts, its rules, and the corpus families its tables were checked against.
PROVIDERS: tuple[tuple[str, tuple[str, ...], Rule, frozenset[str]], ...] = (
    ("Apple", (".mail.icloud.com", ".apple.com", ".me.com"), _apple, frozenset({"rhost-apple"})),
    ("Cox", ("cox.net",), _cox, frozenset({"rhost-cox"})),
    (
        "Orange/La Poste",
        (".laposte.net", ".orange.fr", ".wanadoo.fr"),
        _france,
        frozenset({"rhost-franceptt"}),
    ),
    (
        "GoDaddy",
        ("smtp.secureserver.net", "mailstore1.secureserver.net"),
        _godaddy,
        frozenset({"rhost-godaddy"}),
    ),
    (
        "Google",
        ("aspmx.l.google.com", "gmail-smtp-in.l.google.com"),
        _google,
        frozenset({"rhost-google"}),
    ),
    ("i.ua", (".email.ua",), _iua, frozenset({"rhost-iua"})),
    ("au (KDDI)", (".ezweb.ne.jp", "msmx.au.com"), _kddi, frozenset({"rhost-kddi"})),
    (
        "Microsoft",
        (".prod.outlook.com", ".protection.outlook.com"),
        _microsoft,
        frozenset({"rhost-microsoft"}),
    ),
    ("Mimecast", (".mimecast.com",), _mimecast, frozenset({"rhost-mimecast"})),
    ("NTT docomo", ("mfsmax.docomo.ne.jp",), _docomo, frozenset({"rhost-nttdocomo"})),
    ("Spectrum", ("charter.net",), _spectrum, frozenset({"rhost-spectrum"})),
    ("Tencent", (".qq.com",), _tencent, frozenset({"rhost-tencent"})),
    ("Yahoo", (".yahoodns.net",), _yahoo, frozenset({"rhost-yahooinc"})),
)


_PARTS = re.compile("|".join(re.escape(p) for _, parts, _, _ in PROVIDERS for p in parts))
_BY_PART = {p: (name, rule, families) for name, parts, rule, families in PROVIDERS for p in parts}


def provider(host: str) -> tuple[str, Rule] | None:
    m = _PARTS.search(host.lower()) if host else None
    if m is None:
        return None
    name, rule, families = _BY_PART[m.group(0)]
    return (name, rule) if enabled(families) else None


# A host name the server's reply names ("... [BY5PR01MB1234.prod.protection.outlook.com]").
_NAMED_HOST = re.compile(
    r"(?<![\w.@/-])((?:[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\.){2,}[a-z]{2,24})(?![\w@-])", re.I
)


def decide(f: Facts) -> Verdict | None:
    """The provider's reason for this recipient, tried with the receiving host, then with the
    recipient's domain, then with the host that wrote the report, or None."""
    for host in _candidates(f):
        found = provider(host)
        if found:
            name, rule = found
            reason = rule(f)
            if reason:
                return Verdict(reason, ("rhost", name))
    return None


def _candidates(f: Facts) -> Iterator[str]:
    yield f.rhost
    yield f.destination
    yield from f.lhost.split()
    # Read only when the others say nothing. A host named there counts only if a provider's
    # part is in it, so a reply that holds no part anywhere names none: one scan for the parts
    # (a third of the host pattern's cost) settles most replies.
    said = f.diagnosis[:2000]
    if _PARTS.search(said.lower()):
        yield from _NAMED_HOST.findall(said)
