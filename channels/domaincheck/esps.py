"""What each email service provider documents for a sending domain: the SPF include that
authorises its servers and the DKIM selectors it signs with, found by its SMTP host.

Sources (as each provider documents its domain set-up):
- SendGrid: "How to set up domain authentication" (twilio.com/docs/sendgrid/ui/account-and-
  settings/how-to-set-up-domain-authentication): with automated security, CNAMEs
  ``s1._domainkey`` and ``s2._domainkey`` to ``s1/s2.domainkey.u<id>.wl<n>.sendgrid.net``, and
  the SPF include ``include:sendgrid.net``.
- SparkPost: developers.sparkpost.com/api/sending-domains: a DKIM TXT record at an account's
  own selector (``scph<MMYY>``, shown in the app, so the admin enters it) and the SPF include
  ``include:sparkpostmail.com`` (``_spf.sparkpostmail.com`` is what that include points at).
- Mailgun: documentation.mailgun.com, Domains / domain verification: ``include:mailgun.org``;
  DKIM at a selector shown per domain (older domains ``smtp``, ``mx`` or ``k1``; newer ones
  ``pdk1``/``pdk2`` CNAMEs), all tried.
- Amazon SES: docs.aws.amazon.com/ses/latest/dg/send-email-authentication-spf.html and
  send-email-authentication-dkim-easy.html: ``include:amazonses.com`` for a custom MAIL FROM
  domain; Easy DKIM's three ``<token>._domainkey`` CNAMEs have per-domain tokens (entered).
- Postmark: postmarkapp.com, DNS settings of a sender domain: ``include:spf.mtasv.net``; a
  date-based selector ``<date>pm._domainkey`` per key (entered); return path
  ``pm-bounces.<domain>`` CNAME ``pm.mtasv.net``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Esp:
    key: str
    name: str
    host_suffixes: tuple[str, ...]
    # The include to add, then other includes that authorise the same servers.
    spf_include: str
    spf_also: tuple[str, ...] = ()
    dkim_selectors: tuple[str, ...] = ()
    # How the DKIM record to add reads when the provider makes its value per account.
    dkim_hint: str = ""

    @property
    def spf_domains(self) -> tuple[str, ...]:
        return (self.spf_include, *self.spf_also)


ESPS = (
    Esp(
        key="sendgrid",
        name="SendGrid",
        host_suffixes=("sendgrid.net",),
        spf_include="sendgrid.net",
        dkim_selectors=("s1", "s2"),
        dkim_hint="the CNAME value SendGrid shows under Settings → Sender Authentication "
        "(s1.domainkey.u<id>.wl<n>.sendgrid.net)",
    ),
    Esp(
        key="sparkpost",
        name="SparkPost",
        host_suffixes=("sparkpostmail.com", "sparkpost.com"),
        spf_include="sparkpostmail.com",
        spf_also=("_spf.sparkpostmail.com", "_spf.eu.sparkpostmail.com"),
        dkim_hint="the DKIM TXT record SparkPost shows for the sending domain",
    ),
    Esp(
        key="mailgun",
        name="Mailgun",
        host_suffixes=("mailgun.org", "mailgun.net"),
        spf_include="mailgun.org",
        spf_also=("eu.mailgun.org",),
        dkim_selectors=("pdk1", "pdk2", "smtp", "mx", "k1"),
        dkim_hint="the DKIM record Mailgun shows under Sending → Domains → DNS records",
    ),
    Esp(
        key="ses",
        name="Amazon SES",
        host_suffixes=("amazonaws.com",),
        spf_include="amazonses.com",
        dkim_hint="the three Easy DKIM CNAME records SES shows for the domain identity",
    ),
    Esp(
        key="postmark",
        name="Postmark",
        host_suffixes=("postmarkapp.com", "mtasv.net"),
        spf_include="spf.mtasv.net",
        dkim_hint="the DKIM TXT record Postmark shows under Sender Signatures → DNS settings",
    ),
)


def esp_for_host(host: str) -> Esp | None:
    """The provider behind an SMTP host (smtp.sendgrid.net, email-smtp.eu-west-1.amazonaws.com),
    or None for a relay of the customer's own."""
    host = host.lower().rstrip(".")
    for esp in ESPS:
        if any(host == suffix or host.endswith("." + suffix) for suffix in esp.host_suffixes):
            if esp.key == "ses" and not host.startswith("email-smtp."):
                continue
            return esp
    return None
