"""Why a recipient bounced, in Sisimai 5's taxonomy and by Sisimai's order of evidence.

The reason names and their meaning are Sisimai's (https://libsisimai.org/en/reason/). How one is
chosen follows Sisimai's own order, written afresh here:

1. a reason the vendor's format states outright (``Facts.vendor_reason``), unless it is one of the
   vague ones that are worth a second look (``RETRY``);
2. the receiving provider's documented replies (``rhost``);
3. the "probes" in a fixed order: each reason says yes when the enhanced status names it, or the
   server's words carry one of its phrases, with a few guards on the SMTP command the reply
   answered (a filter never speaks before DATA, an unknown user only at RCPT);
4. otherwise the phrases of the remaining reasons, then the status code's class (x.6 content,
   x.7 security), the mailer type, a syntax-error reply code, a delayed action, a rejected HELO;
5. ``onhold`` when the server said something nobody could place, ``undefined`` when it said
   nothing.

Every decision comes back with the rule that made it (``Verdict.rule``), so a page can say why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# The reasons of Sisimai 5.1, and the human sentence for each is in ``labels``.
REASONS = (
    "authfailure",
    "badreputation",
    "blocked",
    "contenterror",
    "exceedlimit",
    "expired",
    "filtered",
    "hasmoved",
    "hostunknown",
    "mailboxfull",
    "mailererror",
    "mesgtoobig",
    "networkerror",
    "norelaying",
    "notaccept",
    "notcompliantrfc",
    "onhold",
    "policyviolation",
    "rejected",
    "requireptr",
    "securityerror",
    "spamdetected",
    "speeding",
    "suspend",
    "syntaxerror",
    "systemerror",
    "systemfull",
    "toomanyconn",
    "undefined",
    "userunknown",
    "virusdetected",
)

HARD_REASONS = frozenset({"userunknown", "hostunknown", "hasmoved"})
# Reasons too vague to keep when another rule can say more.
RETRY = frozenset(
    {
        "undefined",
        "onhold",
        "systemerror",
        "securityerror",
        "expired",
        "suspend",
        "networkerror",
        "hostunknown",
        "userunknown",
    }
)


def is_hard(reason: str, status: str) -> bool:
    """Hard = the address will never work: userunknown, hostunknown, hasmoved, and notaccept
    with a permanent (5.x.x) status. Everything else may work on a later attempt."""
    return reason in HARD_REASONS or (reason == "notaccept" and status.startswith("5"))


# --- the servers' words ------------------------------------------------------------------------
# Per reason: phrases that are contained in the lower-cased diagnostic, and phrase sequences whose
# pieces appear in that order. Sisimai's pattern lists, one pattern per line.

_CONTAINS: dict[str, tuple[str, ...]] = {
    "authfailure": (
        "//spf.pobox.com",
        "bad spf records for",
        "dmarc policy",
        "doesn't meet the required authentication level",
        "please inspect your spf settings",
        "sender policy framework (spf) fail",
        "sender policy framework violation",
        "spf (sender policy framework) domain authentication fail",
        "spf check: fail",
        "the 5322.from address doesn't meet the authentication requirements defined for the sender",
    ),
    "badreputation": (
        "a poor email reputation score",
        "has been temporarily rate limited due to ip reputation",
        "ip/domain reputation problems",
        "likely suspicious due to the very low reputation",
        "none/bad reputation",
        "temporarily deferred due to unexpected volume or user complaints",
        "the sending mta's poor reputation",
    ),
    "blocked": (
        " said: 550 blocked",
        "//www.spamcop.net/bl.",
        "bad sender ip address",
        "banned sending ip",
        "blacklisted by",
        "blocked using ",
        "blocked - see http",
        "dnsbl:attrbl",
        "client host rejected: abus detecte gu_eib_02",
        "client host rejected: abus detecte gu_eib_04",
        "client host rejected: may not be mail exchanger",
        "client host rejected: was not authenticated",
        "confirm this mail server",
        "connection dropped",
        "connection refused by",
        "connection reset by peer",
        "connection was dropped by remote host",
        "connections not accepted from ip addresses on spamhaus xbl",
        "currently sending spam see: ",
        "domain does not exist:",
        "dynamic/zombied/spam ips blocked",
        "error: no valid recipients from ",
        "esmtp not accepting connections",
        "extreme bad ip profile",
        "go away",
        "helo command rejected:",
        "host network not allowed",
        "hosts with dynamic ip",
        "invalid ip for sending mail of domain",
        "is in a black list",
        "is not allowed to send mail from",
        "no access from mail server",
        "no matches to nameserver query",
        "not currently accepting mail from your ip",
        "part of their network is on our block list",
        "please use the smtp server of your isp",
        "refused - see http",
        "rejected - multi-blacklist",
        "rejected because the sending mta or the sender has not passed validation",
        "rejecting open proxy",
        "sender ip address rejected",
        "server access forbidden by your ip ",
        "service not available, closing transmission channel",
        "smtp error from remote mail server after initial connection:",
        "sorry, that domain isn't in my list of allowed rcpthosts",
        "sorry, your remotehost looks suspiciously like spammer",
        "to submit messages to this e-mail system has been rejected",
        "too many spams from your ip",
        "too many unwanted messages have been sent from the following ip address above",
        "was blocked by ",
        "we do not accept mail from dynamic ips",
        "you are not allowed to connect",
        "you are sending spam",
        "your ip address is listed in the rbl",
        "your network is temporary blacklisted",
        "your server requires confirmation",
    ),
    "contenterror": (
        "duplicate header",
        "header size exceeds maximum permitted",
        "improper use of 8-bit data in message header",
        "message header size, or recipient list, exceeds policy limit",
        "message mime complexity exceeds the policy maximum",
        "routing loop detected -- too many received: headers",
        "this message contain invalid mime headers",
        "this message contain improperly-formatted binary content",
        "this message contain text that uses unnecessary base64 encoding",
    ),
    "exceedlimit": ("message header size exceeds limit", "message too large"),
    "expired": (
        "connection timed out",
        "could not find a gateway for",
        "delivery attempts will continue to be",
        "delivery expired",
        "delivery time expired",
        "failed to deliver to domain ",
        "giving up on",
        "have been failing for a long time",
        "has been delayed",
        "it has not been collected after",
        "message expired after sitting in queue for",
        "message expired, cannot connect to remote server",
        "message expired, connection refulsed",
        "message timed out",
        "retry time not reached for any host after a long failure period",
        "server did not respond",
        "this message has been in the queue too long",
        "unable to deliver message after multiple retries",
        "was not reachable within the allowed queue period",
        "your message could not be delivered for more than",
    ),
    "filtered": (
        "account is protected by",
        "because the recipient is only accepting mail from specific email addresses",
        "bounced address",
        "due to extended inactivity new mail is not currently being accepted for this mailbox",
        "has restricted sms e-mail",
        "is not accepting any mail",
        "message filtered",
        "message rejected due to user rules",
        "not found recipient account",
        "recipient id refuse to receive mail",
        "recipient is only accepting mail from specific email addresses",
        "refused due to recipient preferences",
        "resolver.rst.notauthorized",
        "user not found",
        "user refuses to receive this mail",
        "user reject",
        "you have been blocked by the recipient",
    ),
    "hasmoved": (" has been replaced by ",),
    "hostunknown": (
        "domain does not exist",
        "domain is not reachable",
        "domain must exist",
        "host or domain name not found",
        "host unknown",
        "host unreachable",
        "mail domain mentioned in email address is unknown",
        "name or service not known",
        "no such domain",
        "recipient address rejected: unknown domain name",
        "recipient domain must exist",
        "the account or domain may not exist",
        "unknown host",
        "unroutable address",
        "unrouteable address",
    ),
    "mailboxfull": (
        "452 insufficient disk space",
        "account disabled temporarly for exceeding receiving limits",
        "boite du destinataire pleine",
        "exceeded storage allocation",
        "full mailbox",
        "mailbox exceeds allowed size",
        "mailbox size limit exceeded",
        "mailbox would exceed maximum allowed storage",
        "mailfolder is full",
        "no space left on device",
        "not sufficient disk space",
        "quota violation for",
        "too much mail data",
        "user has exceeded quota, bouncing mail",
        "user has too many messages on the server",
        "user's space has been used up",
    ),
    "mailererror": (
        " || exit ",
        "procmail: ",
        "bin/procmail",
        "bin/maidrop",
        "command failed: ",
        "command died with status ",
        "command output:",
        "mailer error",
        "pipe to |/",
        "x-unix; ",
    ),
    "mesgtoobig": (
        "exceeded maximum inbound message size",
        "exceeded the maximum incoming message size",
        "line limit exceeded",
        "max message size exceeded",
        "message file too big",
        "message length exceeds administrative limit",
        "message size exceeds fixed limit",
        "message size exceeds fixed maximum message size",
        "message size exceeds maximum value",
        "message too big",
        "message too large for this ",
        "size limit",
        "taille limite du message atteinte",
    ),
    "networkerror": (
        "could not connect and send the mail to",
        "dns records for the destination computer could not be found",
        "hop count exceeded - possible mail loop",
        "host is unreachable",
        "host name lookup failure",
        "host not found, try again",
        "mail forwarding loop for ",
        "malformed name server reply",
        "malformed or unexpected name server reply",
        "maximum forwarding loop count exceeded",
        "message looping",
        "message probably in a routing loop",
        "no route to host",
        "too many hops",
        "unable to resolve route ",
        "unrouteable mail domain",
    ),
    "norelaying": (
        "as a relay",
        "email address is not verified.",
        "insecure mail relay",
        "is not permitted to relay through this server without authentication",
        "mail server requires authentication when attempting to send to a non-local e-mail address",
        "no relaying",
        "not a gateway",
        "not allowed to relay through this machine",
        "not an open relay, so get lost",
        "not local host",
        "relay access denied",
        "relay denied",
        "relay not permitted",
        "relaying denied",
        "relaying mail to ",
        "specified domain is not allowed",
        "that domain isn't in my list of allowed rcpthost",
        "this system is not configured to relay mail",
        "unable to relay ",
        "we don't handle mail for",
    ),
    "notaccept": (
        "does not accept mail (nullmx)",
        "host/domain does not accept mail",
        "host does not accept mail",
        "mail receiving disabled",
        "name server: .: host not found",
        "no mx record found for domain=",
        "no route for current request",
        "smtp protocol returned a permanent error",
    ),
    "notcompliantrfc": (
        "this message is not rfc 5322 compliant",
        "https://support.google.com/mail/?p=rfcmessagenoncompliant",
    ),
    "policyviolation": (
        "an illegal attachment on your message",
        "because the recipient is not accepting mail with ",
        "by non-member to a members-only list",
        "closed mailing list",
        "denied by policy",
        "email not accepted for policy reasons",
        "email rejected due to security policies",
        "header are not accepted",
        "header error",
        "local policy violation",
        "message bounced due to organizational settings",
        "message given low priority",
        "message not accepted for policy reasons",
        "message rejected due to local policy",
        "messages with multiple addresses",
        "rejected for policy reasons",
        "protocol violation",
        "the email address used to send your message is not subscribed to this group",
        "the message was rejected by organization policy",
        "this message was blocked because its content presents a potential",
        "we do not accept messages containing images or other attachments",
        "you're using a mass mailer",
    ),
    "rejected": (
        "access denied (in reply to mail from command)",
        "access denied (sender blacklisted)",
        "address rejected",
        "administrative prohibition",
        "batv failed to verify",
        "batv validation failure",
        "backscatter protection detected an invalid or expired email address",
        "because the sender isn't on the recipient's list of senders to accept mail from",
        "bogus mail from",
        "can't determine purported responsible address",
        "connections not accepted from servers without a valid sender domain",
        "denied [bouncedeny]",
        "denied by secumail valid-address-filter",
        "delivery not authorized, message refused",
        "does not exist e2110",
        "domain of sender address ",
        "email address is on senderfilterconfig list",
        "emetteur invalide",
        "empty envelope senders not allowed",
        "envelope blocked - ",
        "error: no third-party dsns",
        "from: domain is invalid. please provide a valid from:",
        "fully qualified email address required",
        "invalid domain, see <url:",
        "invalid sender",
        "is not a registered gateway user",
        "mail from not owned by user",
        "message rejected: email address is not verified",
        "mx records for ",
        "null sender is not allowed",
        "recipient addresses rejected : access denied",
        "recipient not accepted. (batv: no tag",
        "returned mail not accepted here",
        "rfc 1035 violation: recursive cname records for",
        "rule imposed mailbox access for",
        "sending this from a different address or alias using the ",
        "sender address has been blacklisted",
        "sender email address rejected",
        "sender is in my black list",
        "sender is spammer",
        "sender not pre-approved",
        "sender rejected",
        "sender domain is empty",
        "sender verify failed",
        "sender was rejected",
        "spam reporting address",
        "syntax error: empty email address",
        "the message has been rejected by batv defense",
        "this server does not accept mail from",
        "transaction failed unsigned dsn for",
        "unroutable sender address",
        "you are not allowed to post to this mailing list",
        "you are sending to/from an address that has been blacklisted",
        "your access to submit messages to this e-mail system has been rejected",
        "your email address has been blacklisted",
    ),
    "requireptr": (
        "access denied. ip name lookup failed",
        "all mail servers must have a ptr record with a valid reverse dns entry",
        "bad dns ptr resource record",
        "cannot find your hostname",
        "cannot resolve your address.",
        "client host rejected: cannot find your hostname",
        "fix reverse dns for ",
        "ips with missing ptr records",
        "no ptr record found.",
        "please get a custom reverse dns name from your isp for your host",
        "ptr record setup",
        "reverse dns failed",
        "reverse dns required",
        "sender ip reverse lookup rejected",
        "the ip address sending this message does not have a ptr record setup",
        "the corresponding forward dns entry does not point to the sending ip",
        "this system will not accept messages from servers/devices with no reverse dns",
        "unresolvable relay host name",
        "we do not accept mail from hosts with dynamic ip or generic dns ptr-records",
    ),
    "securityerror": (
        "account not subscribed to ses",
        "authentication credentials invalid",
        "authentication failure",
        "authentication required",
        "authentication turned on in your email client",
        "executable files are not allowed in compressed files",
        "insecure mail relay",
        "recipient address rejected: access denied",
        "sorry, you don't authenticate or the domain isn't in my list of allowed rcpthosts",
        "unauthenticated senders not allowed",
        "verification failure",
        "you are not authorized to send mail, authentication is required",
        "starttls is required to send mail",
        "tls required but not supported",
    ),
    "spamdetected": (
        " - spam",
        "//www.spamhaus.org/help/help_spam_16.htm",
        "//dsbl.org/help/help_spam_16.htm",
        "//mail.163.com/help/help_spam_16.htm",
        "554 5.7.0 reject, id=",
        "appears to be unsolicited",
        "blacklisted url in message",
        "block for spam",
        "blocked by policy: no spam please",
        "blocked by spamassassin",
        "blocked for abuse. see http://att.net/blocks",
        "bulk email",
        "cannot be forwarded because it was detected as spam",
        "considered unsolicited bulk e-mail (spam) by our mail filters",
        "content filter rejection",
        "cyberoam anti spam engine has identified this email as a bulk email",
        "denied due to spam list",
        "high probability of spam",
        "is classified as spam and is rejected",
        "listed in work.drbl.imedia.ru",
        "the mail server detected your message as spam and has prevented delivery.",
        "mail appears to be unsolicited",
        "mail content denied",
        "may consider spam",
        "message considered as spam or virus",
        "message contains spam or virus",
        "message content rejected",
        "message detected as spam",
        "message filtered",
        "message looks like spam",
        "message is being rejected as it seems to be a spam",
        "message refused by mailmarshal spamprofiler",
        "message refused by trustwave seg spamprofiler",
        "message rejected as spam",
        "message rejected because of unacceptable content",
        "message rejected due to suspected spam content",
        "message rejected for policy reasons",
        "message was rejected for possible spam/virus content",
        "our email server thinks this email is spam",
        "our system has detected that this message is ",
        "probable spam",
        "reject bulk.advertising",
        "rejected: spamassassin score ",
        "rejected - bulk email",
        "rejecting banned content",
        "rejecting mail content",
        "related to content with spam-like characteristics",
        "sender domain listed at ",
        "sending address not accepted due to spam filter",
        "spam blocked",
        "spam check",
        "spam content matched",
        "spam detected",
        "spam email",
        "spam message rejected.",
        "spam not accepted",
        "spam refused",
        "spam rejection",
        "spam score ",
        "spambouncer identified spam",
        "spamming not allowed",
        "too many spam complaints",
        "too much spam.",
        "the email message was detected as spam",
        "the message has been rejected by spam filtering engine",
        "the message was rejected due to classification as bulk mail",
        "the content of this message looked like spam",
        "this message appears to be spam",
        "this message has been identified as spam",
        "this message has been scored as spam with a probability",
        "this message was classified as spam",
        "this message was rejected by recurrent pattern detection system",
        "transaction failed spam message not queued",
        "we dont accept spam",
        "your email appears similar to spam we have received before",
        "your email breaches local uribl policy",
        "your email had spam-like ",
        "your email is considered spam",
        "your email is probably spam",
        "your email was detected as spam",
        "your message as spam and has prevented delivery",
        "your message has been temporarily blocked by our filter",
        "your message has been rejected because it appears to be spam",
        "your message has triggered a spam block",
        "your message may contain the spam contents",
        "your message failed several antispam checks",
    ),
    "speeding": (
        "mail sent from your ip address has been temporarily rate limited",
        "please try again slower",
        "receiving mail at a rate that prevents additional messages from being delivered",
    ),
    "suspend": (
        " is currently suspended",
        " temporary locked",
        "archived recipient",
        "boite du destinataire archivee",
        "email account that you tried to reach is disabled",
        "has been suspended",
        "inactive account",
        "invalid/inactive user",
        "is a deactivated mailbox",
        "is unavailable: user is terminated",
        "mailbox currently suspended",
        "mailbox disabled",
        "mailbox is frozen",
        "mailbox unavailable or access denied",
        "recipient rejected: temporarily inactive",
        "recipient suspend the service",
        "the email account that you tried to reach is inactive",
        "this account has been disabled or discontinued",
        "this account has been temporarily suspended",
        "this address no longer accepts mail",
        "this mailbox is disabled",
        "user or domain is disabled",
        "user suspended",
        "vdelivermail: account is locked email bounced",
    ),
    "systemerror": (
        "aliasing/forwarding loop broken",
        "can't create user output file",
        "could not load drd for domain",
        "internal error reading data",
        "internal server error: operation now in progress",
        "interrupted system call",
        "it encountered an error while being processed",
        "it would create a mail loop",
        "local configuration error",
        "local error in processing",
        "loop was found in the mail exchanger",
        "loops back to myself",
        "mail system configuration error",
        "queue file write error",
        "recipient deferred because there is no mdb",
        "remote server is misconfigured",
        "server configuration error",
        "service currently unavailable",
        "system config error",
        "temporary local problem",
        "timeout waiting for input",
        "transaction failed ",
    ),
    "systemfull": (
        "mail system full",
        "requested mail action aborted: exceeded storage allocation",
    ),
    "toomanyconn": (
        "all available ips are at maximum connection limit",
        "connection rate limit exceeded",
        "exceeds per-domain connection limit for",
        "has exceeded the max emails per hour ",
        "throttling failure: daily message quota exceeded",
        "throttling failure: maximum sending rate exceeded",
        "too many connections",
        "too many concurrent smtp connections",
        "too many errors from your ip",
        "too many recipients",
        "too many smtp sessions for this host",
        "trop de connexions, ",
        "we have already made numerous attempts to deliver this message",
    ),
    "userunknown": (
        "#5.1.1 bad address",
        "550 address invalid",
        "5.1.0 address rejected.",
        "address does not exist",
        "address not present in directory",
        "address unknown",
        "can't accept user",
        "does not exist.",
        "destination addresses were unknown",
        "destination server rejected recipients",
        "email address does not exist",
        "email address could not be found",
        "invalid address",
        "invalid mailbox",
        "invalid mailbox path",
        "invalid recipient",
        "is not a known user",
        "is not a valid mailbox",
        "is not an active address at this host",
        "mailbox does not exist",
        "mailbox invalid",
        "mailbox is inactive",
        "mailbox is unavailable",
        "mailbox not present",
        "mailbox not found",
        "mailbox unavaiable",
        "nessun utente simile in questo indirizzo",
        "no account by that name here",
        "no existe dicha persona",
        "no existe ese usuario ",
        "no mail box available for this user",
        "no mailbox by that name is currently available",
        "no mailbox found",
        "no such address here",
        "no such mailbox",
        "no such person at this address",
        "no such recipient",
        "no such user",
        "no thank you rejected: account unavailable",
        "no valid recipients, bye",
        "not a valid recipient",
        "not a valid user here",
        "not a local address",
        "not email addresses",
        "recipient address rejected. (in reply to rcpt to command)",
        "recipient address rejected: access denied",
        "recipient address rejected: invalid user",
        "recipient address rejected: invalid-recipient",
        "recipient address rejected: unknown user",
        "recipient address rejected: userunknown",
        "recipient does not exist",
        "recipient is not accepted",
        "recipient is not local",
        "recipient not exist",
        "recipient not found",
        "recipient not ok",
        "recipient refuses to accept your mail",
        "recipient unknown",
        "requested action not taken: mailbox unavailable",
        "resolver.adr.recipient notfound",
        "sorry, user unknown",
        "sorry, badrcptto",
        "sorry, no mailbox here by that name",
        "sorry, your envelope recipient has been denied",
        "that domain or user isn't in my list of allowed rcpthosts",
        "the email account that you tried to reach does not exist",
        "the following recipients was undeliverable",
        "the user's email name is not found",
        "there is no one at this address",
        "this address no longer accepts mail",
        "this email address is wrong or no longer valid",
        "this recipient is in my badrecipientto list",
        "this recipient is not in my validrcptto list",
        "this spectator does not exist",
        "unknown mailbox",
        "unknown recipient",
        "unknown user",
        "user does not exist",
        "user missing home directory",
        "user not active",
        "user not exist",
        "user not found",
        "user not known",
        "user unknown",
        "utilisateur inconnu !",
        "vdeliver: invalid or unknown virtual user",
        "weil die adresse nicht gefunden wurde oder keine e-mails empfangen kann",
        "your envelope recipient is in my badrcptto list",
    ),
    "vacation": (
        "i am away on vacation",
        "i am away until",
        "i am out of the office",
        "i will be traveling for work on",
    ),
    "virusdetected": (
        "it has a potentially executable attachment",
        "the message was rejected because it contains prohibited virus or spam content",
        "this form of attachment has been used by recent viruses or other malware",
        "virus detected",
        "virus phishing/malicious_url detected",
        "your message was infected with a virus",
    ),
}

_ALIGNED: dict[str, tuple[tuple[str, ...], ...]] = {
    "authfailure": (
        (" is not allowed to send mail.", "_401"),
        ("is not allowed to send from <", " per it's spf record"),
    ),
    "blocked": (
        ("(", "@", ":blocked)"),
        ("access from ip address ", " blocked"),
        ("client host ", " blocked using"),
        ("connections will not be accepted from ", " because the ip is in spamhaus's list"),
        ("dnsbl:rbl ", ">_is_blocked"),
        ("email blocked by ", ".barracudacentral.org"),
        ("email blocked by ", "spamhaus"),
        ("host ", " refused to talk to me: ", " blocked"),
        ("ip ", " is blocked by earthlink"),
        ("is in an ", "rbl on "),
        ("mail server at ", " is blocked"),
        ("mail from ", " refused:"),
        ("message from ", " rejected based on blacklist"),
        ("messages from ", " temporarily deferred due to user complaints"),
        ("server ip ", " listed as abusive"),
        ("sorry! your ip address", " is blocked by rbl"),
        ("the domain ", " is blacklisted"),
        ("the email ", " is blacklisted"),
        ("the ip", " is blacklisted"),
        ("veuillez essayer plus tard. service refused, please try later. ", "103"),
        ("veuillez essayer plus tard. service refused, please try later. ", "510"),
        ("your access ip", " has been rejected"),
        ("your sender's ip address is listed at ", ".abuseat.org"),
    ),
    "expired": (("could not be delivered for", " days"),),
    "hostunknown": (("553 ", " does not exist"),),
    "mailboxfull": (
        ("account is ", " quota"),
        ("disk", "quota"),
        ("enough ", " space"),
        ("mailbox ", "exceeded", " limit"),
        ("mailbox ", "full"),
        ("mailbox ", "quota"),
        ("maildir ", "quota"),
        ("over ", "quota"),
        ("quota ", "exceeded"),
    ),
    "notcompliantrfc": ((" multiple ", " header"),),
    "policyviolation": (
        ("you have exceeded the", "allowable number of posts without solving a captcha"),
    ),
    "requireptr": (
        ("domain ", " mismatches client ip"),
        ("dns lookup failure: ", " try again later"),
        ("reverse dns lookup for host ", " failed permanently"),
        ("server access ", " forbidden by invalid rdns record of your mail server"),
        ("service permits ", " unverifyable sending ips"),
    ),
    "securityerror": (
        ("authentication failed; server ", " said: "),
        ("authentification invalide", "305"),
        ("authentification requise", "402"),
        ("domain ", " is a dead domain"),
        ("user ", " is not authorized to perform ses:sendrawemail on resource"),
    ),
    "spamdetected": (
        ("greylisted", " please try again in"),
        ("mail score (", " over "),
        ("mail rejete. mail rejected. ", "506"),
        ("our filters rate at and above ", " percent probability of being spam"),
        ("rejected by ", " (spam)"),
        ("rejected due to spam ", "classification"),
        ("rejected due to spam ", "content"),
        ("rule imposed as ", " is blacklisted on"),
        ("spam ", " exceeded"),
        ("this message scored ", " spam points"),
    ),
    "systemerror": (("unable to connect ", "daemon"),),
    "userunknown": (
        ("<", "> not found"),
        ("<", ">... blocked by "),
        ("account ", " does not exist at the organization"),
        ("adresse d au moins un destinataire invalide. invalid recipient.", "416"),
        ("adresse d au moins un destinataire invalide. invalid recipient.", "418"),
        ("bad", "recipient"),
        ("mailbox ", "does not exist"),
        ("mailbox ", "unavailable or access denied"),
        ("no ", " in name directory"),
        ("non", "existent user"),
        ("rcpt <", " does not exist"),
        ("rcpt (", "t exist "),
        ("recipient ", " was not found in"),
        ("recipient address rejected: user ", "  does not exist"),
        ("recipient address rejected: user unknown in ", "  table"),
        ("said: 550-5.1.1 ", " user unknown "),
        ("said: 550 5.1.1 ", " user unknown "),
        ("this user doesn't have a ", " account"),
        ("unknown e", "mail address"),
        ("unknown local", "part"),
        ("user ", " was not found"),
        ("user ", " does not exist"),
        ("user (", ") unknown"),
    ),
}

# Phrases that rule a reason out even when one of its own phrases is present.
_UNLESS: dict[str, tuple[str, ...]] = {
    "rejected": (
        "5.1.0 address rejected",
        "recipient address rejected",
        "sender ip address rejected",
    ),
}


def aligned(text: str, pieces: tuple[str, ...]) -> bool:
    """Each piece appears in ``text``, in this order, without overlapping."""
    at = 0
    for piece in pieces:
        found = text.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return True


@lru_cache(maxsize=4096)
def phrase(reason: str, lowered: str) -> str:
    """The phrase of ``reason`` that the lower-cased diagnostic carries, or ''."""
    if not lowered:
        return ""
    for unless in _UNLESS.get(reason, ()):
        if unless in lowered:
            return ""
    for text in _CONTAINS.get(reason, ()):
        if text in lowered:
            return text
    for pieces in _ALIGNED.get(reason, ()):
        if pieces[0] in lowered and aligned(lowered, pieces):  # most fail on the first piece
            return _span(lowered, pieces)
    return ""


def _span(lowered: str, pieces: tuple[str, ...]) -> str:
    """The server's own words from the first piece to the last, when they are short enough to
    quote ("mailbox is full"); else the pieces ("mailbox … full")."""
    start = lowered.find(pieces[0])
    at = start
    for piece in pieces:
        at = lowered.find(piece, at) + len(piece)
    words = " ".join(lowered[start:at].split())
    if len(words) <= 60:
        return words
    return " … ".join(p.strip() for p in pieces)


# --- codes --------------------------------------------------------------------------------------

# What an enhanced status code means, where it means one thing (RFC 3463 and its successors, as
# Sisimai reads them).
STATUS_REASON = {
    "2.1.5": "delivered",
    "4.1.6": "hasmoved",
    "4.1.7": "rejected",
    "4.1.8": "rejected",
    "4.1.9": "systemerror",
    "4.2.1": "suspend",
    "4.2.2": "mailboxfull",
    "4.2.3": "exceedlimit",
    "4.2.4": "filtered",
    "4.3.1": "systemfull",
    "4.3.2": "notaccept",
    "4.3.3": "systemerror",
    "4.3.5": "systemerror",
    "4.4.1": "expired",
    "4.4.2": "networkerror",
    "4.4.3": "systemerror",
    "4.4.4": "networkerror",
    "4.4.5": "systemfull",
    "4.4.6": "networkerror",
    "4.4.7": "expired",
    "4.4.8": "networkerror",
    "4.5.3": "systemerror",
    "4.5.5": "systemerror",
    "4.6.0": "contenterror",
    "4.6.2": "contenterror",
    "4.6.5": "contenterror",
    "4.7.1": "blocked",
    "4.7.2": "blocked",
    "4.7.5": "securityerror",
    "4.7.6": "securityerror",
    "4.7.7": "securityerror",
    "4.7.12": "securityerror",
    "4.7.15": "securityerror",
    "4.7.16": "mesgtoobig",
    "4.7.24": "authfailure",
    "4.7.25": "requireptr",
    "4.7.26": "authfailure",
    "5.1.0": "userunknown",
    "5.1.1": "userunknown",
    "5.1.2": "hostunknown",
    "5.1.3": "userunknown",
    "5.1.4": "filtered",
    "5.1.6": "hasmoved",
    "5.1.7": "rejected",
    "5.1.8": "rejected",
    "5.1.9": "systemerror",
    "5.1.10": "notaccept",
    "5.2.0": "filtered",
    "5.2.1": "filtered",
    "5.2.2": "mailboxfull",
    "5.2.3": "exceedlimit",
    "5.2.4": "filtered",
    "5.3.0": "systemerror",
    "5.3.1": "systemfull",
    "5.3.2": "notaccept",
    "5.3.3": "systemerror",
    "5.3.4": "mesgtoobig",
    "5.3.5": "systemerror",
    "5.4.0": "networkerror",
    "5.4.3": "systemerror",
    "5.4.4": "hostunknown",
    "5.5.2": "syntaxerror",
    "5.5.3": "toomanyconn",
    "5.5.4": "systemerror",
    "5.5.5": "systemerror",
    "5.5.6": "syntaxerror",
    "5.6.0": "contenterror",
    "5.6.1": "contenterror",
    "5.6.2": "contenterror",
    "5.6.3": "contenterror",
    "5.6.5": "contenterror",
    "5.6.6": "contenterror",
    "5.6.7": "contenterror",
    "5.6.8": "contenterror",
    "5.6.9": "contenterror",
    "5.7.0": "securityerror",
    "5.7.1": "securityerror",
    "5.7.2": "securityerror",
    "5.7.3": "securityerror",
    "5.7.4": "securityerror",
    "5.7.5": "securityerror",
    "5.7.6": "securityerror",
    "5.7.7": "securityerror",
    "5.7.8": "securityerror",
    "5.7.9": "securityerror",
    "5.7.10": "securityerror",
    "5.7.11": "securityerror",
    "5.7.13": "suspend",
    "5.7.14": "securityerror",
    "5.7.15": "securityerror",
    "5.7.16": "mesgtoobig",
    "5.7.17": "hasmoved",
    "5.7.18": "hasmoved",
    "5.7.19": "securityerror",
    "5.7.20": "authfailure",
    "5.7.21": "authfailure",
    "5.7.22": "authfailure",
    "5.7.23": "authfailure",
    "5.7.24": "authfailure",
    "5.7.25": "requireptr",
    "5.7.26": "authfailure",
    "5.7.27": "notaccept",
}


def status_reason(status: str) -> str:
    return STATUS_REASON.get(status, "")


_STATUS_IN_TEXT = re.compile(r"(?<![\d.vV])([245])\.([0-7])\.(\d{1,3})(?![\d])")
_IPV4 = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")


def find_status(text: str, klass: str = "") -> str:
    """The enhanced status code a server's reply carries ("550 5.1.1 ..." -> "5.1.1"), or ''.
    A specific code beats a generic x.0.0 (or the ambiguous 4.4.7) said in the same reply."""
    if len(text) < 5:
        return ""
    text = _IPV4.sub("***", text)
    found: list[str] = []
    generic = ""
    for m in _STATUS_IN_TEXT.finditer(text):
        if klass and m.group(1) != klass:
            continue
        code = f"{m.group(1)}.{m.group(2)}.{int(m.group(3))}"
        if code.endswith(".0.0") or code == "4.4.7":
            generic = generic or code
            continue
        found.append(code)
    if generic:
        found.append(generic)
    if not found:
        return ""
    chosen = found[0]
    for other in found[1:]:
        chosen = prefer(chosen, other, "")
    return chosen


_REPLY_ORDER = {
    "5": (
        "550",
        "552",
        "553",
        "551",
        "521",
        "525",
        "523",
        "524",
        "530",
        "533",
        "534",
        "535",
        "538",
        "555",
        "556",
        "554",
        "500",
        "501",
        "502",
        "503",
        "504",
    ),
    "4": ("421", "450", "451", "452", "422", "430", "432", "453", "454", "455", "458", "459"),
    "2": ("211", "214", "220", "221", "235", "250", "251", "252", "253", "334", "354"),
}
_REPLY_IN_TEXT = re.compile(r"(?<![./0-9])([245]\d\d)(?![./0-9])")


def find_reply(text: str, status: str = "") -> str:
    """The SMTP reply code a server's words carry, or ''. Like Sisimai, a permanent code wins
    over a temporary one named in the same text; ``status`` narrows to its class."""
    if len(text) < 3 or "x-unix" in text[:40].lower():
        return ""
    present = {m.group(1) for m in _REPLY_IN_TEXT.finditer(text)}
    if not present:
        return ""
    classes = (status[0],) if status[:1] in ("2", "4", "5") else ("5", "4", "2")
    for klass in classes:
        for code in _REPLY_ORDER[klass]:
            if code in present:
                return code
    return ""


def prefer(field: str, said: str, reply: str) -> str:
    """Choose between the Status field and a code found in the server's words."""
    if not field:
        return said
    if not said or len(field) < 5:
        return said or field
    if len(said) < 5:
        return field
    if reply and field[0] != said[0]:
        if reply[0] == field[0]:
            return field
        if reply[0] == said[0]:
            return said
    if field == said:
        return field
    if ".0.0" in field:
        return said if ".0.0" not in said else field
    if ".0" in field and ".0" not in said:
        return said
    if ".0.0" in said:
        return field
    if field in ("4.4.7", "4.7.0") or field.startswith("5.3."):
        return said
    if field[1:5] in (".5.1", ".5.2", ".5.4", ".5.5"):
        return said
    if field == "5.1.1":
        return field if (".0" in said or said.startswith("5.5.")) else said
    if field == "5.1.3" and said.startswith("5.7."):
        return said
    return field


_COMMANDS = ("HELO", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "QUIT", "XFORWARD")
_COMMAND_IN_TEXT = re.compile(  # the lookahead lets the engine skip to a command's first letter
    r"(?=[ADEHMQRSX])(?<![0-9A-Za-z@])(?:(HELO|EHLO|STARTTLS|RCPT|DATA|QUIT|XFORWARD)(?![0-9A-Za-z@])|(AUTH (?:PLAIN|LOGIN|CRAM-|DIGEST-)|MAIL F))"
)


def find_command(text: str) -> str:
    """The last SMTP command a piece of text names ("in reply to RCPT TO command" -> "RCPT"),
    upper-case words only, or ''."""
    last = ""
    seen: list[str] = []
    for m in _COMMAND_IN_TEXT.finditer(text):
        word = (m.group(1) or m.group(2))[:4]
        word = {"STAR": "STARTTLS", "XFOR": "XFORWARD"}.get(word, word)
        if word not in seen:
            seen.append(word)
            last = word
    return last


# --- the decision -------------------------------------------------------------------------------


@dataclass
class Facts:
    """What a bounce says about one recipient, as the reason rules read it."""

    status: str = ""  # the enhanced status, after ``prefer``
    diagnosis: str = ""  # the server's words (or the notification's, when it quotes none)
    spec: str = ""  # the diagnostic type: SMTP, X-UNIX, X-POSTFIX, ...
    action: str = ""  # failed, delayed, ...
    command: str = ""  # the SMTP command the rejection answered
    reply: str = ""  # the SMTP reply code
    rhost: str = ""  # the receiving host
    lhost: str = ""  # the host that wrote the report
    destination: str = ""  # the recipient's domain
    vendor_reason: str = ""  # what a vendor's format states
    vendor: str = ""  # which format said so
    address: str = ""  # the recipient
    dsn_block: str = ""  # the recipient's delivery-status block, as written


@dataclass(frozen=True)
class Verdict:
    reason: str
    # How it was decided: (kind, detail). Kinds: vendor, rhost, status, phrase, command, reply,
    # action, class, none.
    rule: tuple[str, str]


_EXCEPT_DATA = frozenset({"CONN", "EHLO", "HELO", "MAIL", "RCPT"})


def _probe(reason: str, f: Facts, lowered: str, named: str) -> Verdict | None:
    """Sisimai's "true()" of one reason: does everything known point at it?"""
    said = ""
    if reason == "mailboxfull":
        if named == reason:
            return Verdict(reason, ("status", f.status))
        said = phrase(reason, lowered)
    elif reason == "mesgtoobig":
        if named == reason:
            return Verdict(reason, ("status", f.status))
        if named == "exceedlimit" or f.status == "5.2.3":
            return None
        said = phrase(reason, lowered)
    elif reason in ("exceedlimit", "authfailure", "toomanyconn", "blocked", "requireptr"):
        if named == reason:
            return Verdict(reason, ("status", f.status))
        said = phrase(reason, lowered)
    elif reason == "suspend":
        if f.reply == "525":
            return Verdict(reason, ("reply", f.reply))
        said = phrase(reason, lowered)
    elif reason in ("hasmoved", "notcompliantrfc", "speeding"):
        said = phrase(reason, lowered)
    elif reason == "norelaying":
        if f.command in ("CONN", "EHLO", "HELO"):
            return None
        said = phrase(reason, lowered)
    elif reason == "userunknown":
        if named == "suspend":
            return None
        if named == reason:
            for other in (
                "norelaying",
                "blocked",
                "mailboxfull",
                "hasmoved",
                "rejected",
                "notaccept",
            ):
                if phrase(other, lowered):
                    return None
            return Verdict(reason, ("status", f.status))
        if f.command == "RCPT":
            said = phrase(reason, lowered)
            if said:
                return Verdict(reason, ("phrase", f"{said} (at RCPT)"))
        return None
    elif reason == "filtered":
        if named == "suspend":
            return None
        if named == reason:
            said = phrase("userunknown", lowered) or phrase("filtered", lowered)
            if said:
                return Verdict(reason, ("status", f"{f.status}: {said}"))
            return None
        if f.command in _EXCEPT_DATA:
            return None
        said = phrase("filtered", lowered) or phrase("userunknown", lowered)
    elif reason == "rejected":
        if named == reason:
            return Verdict(reason, ("status", f.status))
        at_mail = f.command == "MAIL" or (f.command == "DATA" and named != "userunknown")
        if at_mail or named in ("", "onhold", "undefined", "securityerror", "systemerror"):
            said = phrase(reason, lowered)
    elif reason == "hostunknown":
        if named == reason:
            if not phrase("networkerror", lowered):
                return Verdict(reason, ("status", f.status))
            return None
        said = phrase(reason, lowered)
    elif reason == "spamdetected":
        if not f.status:
            return None
        if named == reason:
            return Verdict(reason, ("status", f.status))
        if f.command in _EXCEPT_DATA:
            return None
        said = phrase(reason, lowered)
    return Verdict(reason, ("phrase", said)) if said else None


_FIRST = (
    "mailboxfull",
    "mesgtoobig",
    "exceedlimit",
    "suspend",
    "hasmoved",
    "norelaying",
    "authfailure",
    "userunknown",
    "filtered",
    "requireptr",
    "notcompliantrfc",
    "rejected",
    "hostunknown",
    "spamdetected",
    "speeding",
    "toomanyconn",
    "blocked",
)
_SECOND = (
    "mailboxfull",
    "spamdetected",
    "policyviolation",
    "virusdetected",
    "norelaying",
    "authfailure",
    "badreputation",
    "securityerror",
    "systemerror",
    "networkerror",
    "speeding",
    "suspend",
    "expired",
    "contenterror",
    "systemfull",
    "notaccept",
    "mailererror",
)


def _second_look(f: Facts, lowered: str, named: str) -> Verdict | None:
    """When no probe said yes: the other reasons' phrases, then the code's class and the like."""
    if named and named not in RETRY and f.spec in ("SMTP", ""):
        return Verdict(named, ("status", f.status))
    for reason in _SECOND:
        said = phrase(reason, lowered)
        if said:
            return Verdict(reason, ("phrase", said))
    if named:
        return Verdict(named, ("status", f.status))
    subject = f.status[:3]
    if subject in ("5.6", "4.6"):
        return Verdict("contenterror", ("class", f.status))
    if subject in ("5.7", "4.7"):
        return Verdict("securityerror", ("class", f.status))
    if f.spec.upper().startswith("X-UNIX"):
        return Verdict("mailererror", ("class", f.spec))
    if f.reply and f.reply[1:2] == "0" and f.reply[0] in "45" and f.reply[2] in "1234567":
        return Verdict("syntaxerror", ("reply", f.reply))
    if f.action in ("delayed", "expired"):
        return Verdict("expired", ("action", f.action))
    if f.command in ("EHLO", "HELO"):
        return Verdict("blocked", ("command", f.command))
    return None


def decide(f: Facts, rhost_rule: object = None) -> Verdict:
    """The reason for one failed recipient, and the rule that decided it."""
    if f.vendor_reason and f.vendor_reason not in RETRY:
        return Verdict(f.vendor_reason, ("vendor", f.vendor))
    if callable(rhost_rule):
        found = rhost_rule(f)
        if isinstance(found, Verdict) and found.reason:
            return found
    lowered = f.diagnosis.lower()
    named = status_reason(f.status)
    if f.vendor_reason:  # a vague reason the format stated: the probes may still name it
        for reason in _FIRST:
            if reason == f.vendor_reason:
                return Verdict(reason, ("vendor", f.vendor))
            if f.spec in ("SMTP", ""):
                found = _probe(reason, f, lowered, named)
                if found:
                    return found
        return Verdict(f.vendor_reason, ("vendor", f.vendor))
    if f.spec in ("SMTP", ""):
        for reason in _FIRST:
            found = _probe(reason, f, lowered, named)
            if found:
                return found
    found = _second_look(f, lowered, named)
    if found:
        return found
    if phrase("vacation", lowered):
        return Verdict("onhold", ("phrase", phrase("vacation", lowered)))
    if f.diagnosis.strip():
        return Verdict("onhold", ("none", "words nobody could place"))
    return Verdict("undefined", ("none", "no words"))
