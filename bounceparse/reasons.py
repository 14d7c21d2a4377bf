"""Why a recipient bounced, in the Sisimai taxonomy.

A reason comes from the enhanced status code when the code says one thing only (5.1.1 is always an
unknown mailbox), otherwise from the server's words, otherwise from the code's class.
"""

from __future__ import annotations

import re

HARD_REASONS = frozenset({"userunknown", "hostunknown", "hasmoved"})


def is_hard(reason: str, status: str) -> bool:
    """Hard = the address will never work: userunknown, hostunknown, hasmoved, and notaccept
    with a permanent (5.x.x) status."""
    return reason in HARD_REASONS or (reason == "notaccept" and status.startswith("5"))


# Codes that name one reason whatever the text says.
_DECISIVE = {
    "1.1": "userunknown",
    "1.2": "hostunknown",
    "1.6": "hasmoved",
    "1.7": "rejected",
    "1.8": "rejected",
    "1.10": "userunknown",
    "2.2": "mailboxfull",
    "3.4": "mesgtoobig",
    "4.7": "expired",
    "6.0": "contenterror",
    "7.25": "requireptr",
    "7.26": "authfailure",
    "7.27": "notaccept",
    "7.13": "suspend",
    "7.23": "authfailure",
    "7.24": "authfailure",
    "7.7": "authfailure",
}

# Codes that suggest a reason when the text names none.
_SUGGESTED = {
    "1.0": "userunknown",
    "1.4": "userunknown",
    "1.5": "userunknown",
    "1.3": "userunknown",
    "1.9": "systemerror",
    "2.0": "mailboxfull",
    "2.1": "suspend",
    "2.3": "exceedlimit",
    "2.4": "filtered",
    "3.0": "systemerror",
    "3.1": "mailboxfull",
    "3.2": "systemerror",
    "3.3": "systemerror",
    "3.5": "systemerror",
    "4.0": "networkerror",
    "4.1": "expired",
    "4.2": "expired",
    "4.3": "systemerror",
    "4.4": "hostunknown",
    "4.5": "networkerror",
    "4.6": "networkerror",
    "5.0": "syntaxerror",
    "5.1": "syntaxerror",
    "5.2": "syntaxerror",
    "5.3": "toomanyconn",
    "5.4": "syntaxerror",
    "5.5": "syntaxerror",
    "6.1": "contenterror",
    "6.2": "contenterror",
    "6.3": "contenterror",
    "6.4": "contenterror",
    "6.5": "contenterror",
    "7.0": "securityerror",
    "7.1": "rejected",
    "7.2": "rejected",
    "7.3": "securityerror",
    "7.4": "securityerror",
    "7.5": "securityerror",
    "7.6": "securityerror",
    "7.8": "authfailure",
    "7.9": "securityerror",
    "7.10": "securityerror",
    "7.11": "securityerror",
    "7.12": "securityerror",
    "7.15": "securityerror",
    "7.16": "securityerror",
    "7.17": "filtered",
    "7.18": "filtered",
    "7.19": "securityerror",
    "7.20": "authfailure",
    "7.21": "authfailure",
    "7.22": "authfailure",
}

# The server's words, most specific first. Each pattern is matched against lower-cased text with
# runs of white space folded to one space.
_PHRASES: list[tuple[str, tuple[str, ...]]] = [
    (
        "mailboxfull",
        (
            r"mailbox (?:is )?full",
            r"mailbox (?:size|storage) limit",
            r"over ?quota",
            r"quota (?:exceeded|violation|full)",
            r"exceed(?:s|ed)? (?:the )?(?:mailbox|storage|disk|users?) ?(?:quota|size|limit)",
            r"(?:account|mailbox|user) (?:is |has )?(?:over|exceeded) (?:its |the )?(?:quota|storage)",
            r"insufficient (?:disk )?(?:space|storage)",
            r"disk (?:is )?full",
            r"not enough (?:storage|space)",
            r"mailfolder is full",
            r"mailbox has exceeded",
            r"user has exceeded (?:the )?quota",
            r"recipient's mailbox is full",
            r"too much mail data",
            r"quota limit",
        ),
    ),
    (
        "mesgtoobig",
        (
            r"message (?:size )?(?:exceeds|too (?:big|large))",
            r"message is too (?:big|large)",
            r"size limit",
            r"exceeds (?:the )?(?:maximum|fixed) (?:message )?size",
            r"mail size",
        ),
    ),
    (
        "exceedlimit",
        (r"message too large for this recipient", r"exceeded (?:the )?limit"),
    ),
    (
        "hasmoved",
        (r"has been replaced by", r"address has moved", r"mailbox has moved"),
    ),
    (
        "suspend",
        (
            r"(?:mailbox|account|address|user) (?:is |has been )?(?:disabled|suspended|deactivated|inactive|locked|expired|blocked by the owner)",
            r"(?:disabled|suspended|inactive|deactivated|frozen) (?:mailbox|account|recipient|user)",
            r"recipient (?:address )?(?:is )?suspended",
            r"account (?:has been )?(?:closed|terminated|frozen)",
            r"mailbox (?:is )?(?:currently suspended|locked)",
            r"service (?:is )?suspended",
            r"user (?:account )?(?:is )?(?:temporarily )?(?:disabled|suspended)",
            r"is not (?:an )?active (?:mailbox|account|user)",
            r"mailbox disabled",
            r"this account has been disabled",
        ),
    ),
    (
        "norelaying",
        (
            r"relay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed)|prohibited)",
            r"not permitted to relay",
            r"unable to relay",
            r"we do not relay",
            r"relaying (?:mail )?(?:to .{1,80}? )?(?:is )?not allowed",
            r"not a gateway",
            r"relay not permitted",
            r"cannot relay",
            r"no relaying",
        ),
    ),
    (
        "authfailure",
        (
            r"\bspf\b.{0,60}?(?:fail|check|reject)",
            r"(?:fail|reject)\w*.{0,30}?\bspf\b",
            r"\bdmarc\b",
            r"\bdkim\b.{0,40}?(?:fail|invalid|policy)",
            r"sender policy framework",
            r"unauthenticated email",
            r"not authorized to send",
            r"authentication (?:failed|required)",
        ),
    ),
    (
        "requireptr",
        (
            r"(?:no|missing|cannot find your) (?:ptr|reverse dns|rdns|reverse hostname)",
            r"reverse (?:dns|lookup|hostname)",
            r"cannot resolve your (?:address|hostname|ip)",
            r"ptr record",
            r"\brdns\b",
            r"client host rejected: cannot find your hostname",
            r"unresolvable (?:address|client)",
            r"ip name lookup failed",
            r"(?:hostname|host name) (?:does not|doesn't) match",
        ),
    ),
    (
        "badreputation",
        (
            r"(?:poor|low|bad) (?:ip )?reputation",
            r"reputation (?:of|is)",
            r"sender (?:ip )?reputation",
            r"ip address has been temporarily rate limited",
        ),
    ),
    (
        "userunknown",
        (
            r"user(?:name)? (?:is )?unknown",
            r"unknown (?:user|recipient|mailbox|local ?part|address|e-?mail address)",
            r"no such (?:user|recipient|mailbox|person|address|local user|account)",
            r"user (?:not|doesn'?t|does not) (?:found|exist|exists)",
            r"(?:recipient|mailbox|address|account|user|e-?mail(?: address)?) (?:\S+ )?(?:was )?(?:not found|does not exist|doesn'?t exist|not exist|is not valid|invalid|unavailable or does not exist|not known|unknown|not listed)",
            r"invalid (?:recipient|mailbox|user|address|e-?mail address)",
            r"(?:user|mailbox) rejected",
            r"doesn'?t have an? (?:\S+ )?account",
            r"does not have an? (?:\S+ )?account",
            r"not (?:a )?valid (?:recipient|mailbox|user|address)",
            r"recipientnotfound",
            r"bad (?:destination mailbox|recipient)",
            r"mailbox (?:unavailable|not available)",
            r"no mailbox (?:here|by that name|found)",
            r"not our customer",
            r"address (?:lookup|does not) ?exist",
            r"unrouteable address",
            r"the email account that you tried to reach does not exist",
            r"no valid recipients",
            r"undeliverable address",
            r"unknown or illegal alias",
            r"addressee unknown",
            r"is not a known user",
            r"user not local",
            r"mailbox not found",
            r"not a valid mailbox",
            r"could not be found",
            r"sorry, no mailbox",
            r"not listed in .{0,40}?(?:directory|address book)",
            r"invalid (?:final delivery )?user ?id",
            r"address couldn'?t be found",
            r"recipient address rejected: (?:user unknown|unknown user|undeliverable|invalid|access denied)",
            r"address rejected\.?$",
        ),
    ),
    (
        "networkerror",
        (r"host not found, try again", r"temporary (?:dns|name|lookup) (?:error|failure)"),
    ),
    (
        "hostunknown",
        (
            r"host (?:or domain name )?not found",
            r"(?:unknown|unrouteable|unroutable|invalid|bad) (?:host|domain)",
            r"domain (?:\S+ )?(?:does not exist|not found|name not found|is not valid)",
            r"name or service not known",
            r"name server: .{1,80}?: host not found",
            r"host unknown",
            r"recipient domain.{0,40}?(?:invalid|not found)",
            r"nxdomain",
            r"dns (?:lookup|error).{0,40}?(?:fail|not found|no such)",
            r"unable to route",
            r"no route to host",
            r"domain (?:is )?(?:unknown|unrouteable|not reachable)",
            r"host or domain name not found",
            r"(?<![@\w.-])[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,} does not exist",
            r"(?:account|address) or domain may not exist",
        ),
    ),
    (
        "notaccept",
        (
            r"does not accept (?:any )?mail",
            r"null mx",
            r"not accepting (?:any )?mail",
            r"accepts no mail",
            r"no mail(?:box)? service",
            r"no smtp service",
            r"no mx(?: records?)? (?:found|for)",
            r"couldn'?t find a mail exchanger",
        ),
    ),
    (
        "virusdetected",
        (r"virus", r"malware", r"infected", r"unsafe (?:attachment|content)"),
    ),
    (
        "spamdetected",
        (
            r"\bspam\b",
            r"junk mail",
            r"bulk mail",
            r"message (?:content )?(?:was )?(?:rejected|identified|classified|considered) as (?:spam|unsolicited)",
            r"unsolicited",
            r"content filter",
            r"looks like spam",
            r"spam ?assassin",
        ),
    ),
    (
        "blocked",
        (
            r"blacklist",
            r"blocklist",
            r"block ?list",
            r"\brbl\b",
            r"\bdnsbl\b",
            r"spamhaus",
            r"spamcop",
            r"\bsorbs\b",
            r"(?:ip|address|host|client|connection)\S* (?:\S+ )?(?:has been |is |was )?(?:blocked|blacklisted|denied|refused|banned|rejected)",
            r"(?:blocked|banned|listed) (?:ip|address|host|by)",
            r"access denied",
            r"connection refused",
            r"refused to talk",
            r"not allowed to connect",
            r"rejected (?:due to|because of) (?:the )?(?:ip|host)",
            r"too many (?:bad|invalid) recipients",
            r"dynamic ip",
            r"blocked",
        ),
    ),
    (
        "toomanyconn",
        (
            r"too many (?:connections|simultaneous|concurrent|sessions)",
            r"connection (?:limit|rate limit)",
            r"too many messages",
            r"rate limit",
            r"try again later.{0,20}?too many",
            r"exceeded the (?:rate|connection)",
        ),
    ),
    (
        "filtered",
        (
            r"(?:message|mail) (?:was )?(?:filtered|rejected by (?:a )?filter)",
            r"filter",
            r"refused by (?:the )?recipient",
            r"recipient (?:has )?(?:refused|rejected|blocked)",
            r"not (?:allowed|authorized|permitted) to (?:receive|send to|post)",
            r"do(?:es)? not accept mail from",
            r"only accepts? mail from",
            r"group (?:.{1,60}?)?(?:only accepts|members only)",
            r"you (?:are not|aren't) allowed to post",
            r"permission to post",
            r"has restricted",
            r"restricted delivery",
        ),
    ),
    (
        "policyviolation",
        (
            r"policy (?:violation|rejection|reasons)",
            r"violat\w+ (?:our|the|local|site|security) ?(?:\S+ )?polic",
            r"prohibited (?:attachment|content|file)",
            r"(?:attachment|extension|file type) (?:is )?(?:not allowed|prohibited|blocked)",
            r"message (?:rejected|refused) (?:by|due to) .{0,30}?polic",
            r"rejected by (?:the )?(?:\S+ )?policy",
            r"local policy",
            r"policy",
        ),
    ),
    (
        "securityerror",
        (
            r"(?:tls|ssl|starttls) (?:is )?(?:required|handshake|negotiation|failed|error)",
            r"must issue a starttls",
            r"encryption required",
            r"certificate",
            r"security error",
            r"authentication mechanism",
        ),
    ),
    (
        "contenterror",
        (
            r"message (?:header|content|body) (?:is |was )?(?:invalid|malformed|error)",
            r"invalid (?:header|mime|message|content)",
            r"malformed (?:header|mime|message)",
            r"header (?:is |was )?(?:too long|invalid|malformed)",
            r"bad (?:header|message|mime)",
            r"line too long",
            r"8bit",
            r"illegal character",
            r"charset",
        ),
    ),
    (
        "notcompliantrfc",
        (
            r"rfc ?5322",
            r"rfc ?2822",
            r"rfc ?822",
            r"not (?:rfc )?compliant",
            r"multiple (?:from|to|subject|date) headers",
        ),
    ),
    (
        "syntaxerror",
        (
            r"syntax error",
            r"command (?:not recognized|unrecognized)",
            r"bad sequence of commands",
            r"unrecognized command",
        ),
    ),
    (
        "expired",
        (
            r"(?:delivery|retry) time(?:out)? (?:exceeded|expired)",
            r"message (?:has )?expired",
            r"could not be delivered for \d+",
            r"has been delayed",
            r"delivery (?:has been |is )?delayed",
            r"delivery attempts will continue",
            r"retry timeout",
            r"queue (?:for|lifetime|too long)",
            r"too long in (?:the )?queue",
            r"have not been able to deliver",
            r"unable to deliver .{1,40}? for \d+",
            r"giving up",
            r"message timed out",
            r"expired",
            r"will (?:be )?retr(?:y|ied)",
            r"still trying",
            r"temporary failure",
        ),
    ),
    (
        "networkerror",
        (
            r"(?:connection|conversation) (?:timed out|timeout|lost|closed|reset|dropped)",
            r"timed out",
            r"network (?:error|unreachable)",
            r"unable to connect",
            r"could not connect",
            r"can'?t connect",
            r"connect(?:ion)? (?:to .{1,80}? )?failed",
            r"mail (?:loop|forwarding loop)",
            r"loop(?:ing)? detected",
            r"too many hops",
            r"hop count exceeded",
            r"lost connection",
            r"no answer from host",
            r"host (?:is )?(?:down|unreachable)",
        ),
    ),
    (
        "systemerror",
        (
            r"system (?:error|failure|config)",
            r"internal (?:server )?error",
            r"server (?:configuration )?error",
            r"local (?:configuration )?error",
            r"temporary (?:local )?problem",
            r"misconfigur",
            r"i/o error",
            r"resources? (?:temporarily )?unavailable",
            r"service (?:not available|unavailable)",
            r"try again later",
        ),
    ),
    ("onhold", (r"\bon hold\b",)),
    (
        "mailererror",
        (
            r"mailer error",
            r"command (?:died|failed|output)",
            r"\bexit (?:code|status)",
            r"procmail",
            r"pipe to",
        ),
    ),
    (
        "rejected",
        (
            r"sender (?:address )?(?:rejected|refused|denied|invalid|blocked|unknown|not allowed|domain)",
            r"(?:rejected|refused|denied) (?:the )?sender",
            r"(?:mail|envelope) from .{0,80}?(?:rejected|refused|denied)",
            r"domain of sender",
            r"sender verify failed",
            r"address rejected",
            r"rejected",
            r"refused",
            r"denied",
            r"not allowed",
        ),
    ),
]

_COMPILED = [(reason, re.compile("|".join(pats))) for reason, pats in _PHRASES]
_SPACE = re.compile(r"\s+")


def from_text(text: str) -> str:
    """The first reason whose phrases appear in the text, or ''."""
    folded = _SPACE.sub(" ", text[:2000].lower())
    for reason, pattern in _COMPILED:
        if pattern.search(folded):
            return reason
    return ""


def from_status(status: str, *, decisive_only: bool) -> str:
    """The reason the enhanced status code names, or ''. ``decisive_only`` keeps to the codes
    that mean one thing whatever the text says."""
    parts = status.split(".", 1)
    if len(parts) != 2:
        return ""
    detail = parts[1]
    found = _DECISIVE.get(detail, "")
    if found or decisive_only:
        return found
    return _SUGGESTED.get(detail, "")


_COMMANDS = (
    (
        "DATA",
        re.compile(
            r"end of data|after data|final data|data command|>>> data\b|in reply to end of data|"
            r"smtp command\W{0,20}data\b",
            re.I,
        ),
    ),
    ("RCPT", re.compile(r"rcpt to|rcpt command|recipient command|\[rcpt_to\]", re.I)),
    ("MAIL", re.compile(r"mail from(?: command|:)|\[mail_from\]|>>> mail from", re.I)),
)
_TEXT_CAN_OVERRIDE = frozenset({"mesgtoobig", "suspend", "filtered", "mailboxfull", "mailererror"})


def smtp_command(text: str) -> str:
    """The SMTP command a rejection answered, when the text says: DATA, RCPT, MAIL or ''."""
    for command, pattern in _COMMANDS:
        if pattern.search(text):
            return command
    return ""


def classify(status: str, text: str, *, delayed: bool = False, around: str = "") -> str:
    """The Sisimai reason for one failed recipient: ``text`` is the server's diagnostic,
    ``around`` the notification's words near the recipient (which may name the SMTP command)."""
    by_status = from_status(status, decisive_only=True)
    if by_status == "userunknown":
        # x.1.1 unless the server's words clearly say something else.
        said = from_text(text)
        return said if said in _TEXT_CAN_OVERRIDE else by_status
    if by_status:
        return by_status
    if delayed:
        return "expired"
    reason = from_text(text) or from_status(status, decisive_only=False)
    if reason == "userunknown":
        # "No such user" answering DATA is a filter's verdict; at MAIL FROM it is about the
        # sender.
        command = smtp_command(f"{text} {around}")
        if command == "MAIL":
            return "rejected"
        if command == "DATA":
            return "filtered"
    if reason == "hostunknown" and status.startswith("4"):
        return "networkerror"  # a name lookup that may work next time
    if reason:
        return reason
    return "onhold" if status.startswith("4") else "undefined"
