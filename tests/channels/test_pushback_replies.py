"""What each provider reply means for the sending pipeline (``channels.transports.classify``):
the channel waits (a rate or a quota), one message waits, or one message fails."""

from __future__ import annotations

import pytest

from channels.transports import (
    AUTH,
    BACKOFF,
    PERMANENT,
    QUOTA,
    RETRY,
    classify,
    failure_from_reply,
)

# The channel waits, exponentially or for Retry-After: the provider's pace.
RATE = [
    "421 4.7.0 Try again later, closing connection. - gsmtp",
    "421 Service not available, closing transmission channel",
    "450 Too many requests",  # plain, without an enhanced code
    "450 4.7.1 Rate limited",
    "451 4.3.2 Rate limit exceeded, try again in a minute",
    "452 4.3.2 Connection rate limit exceeded.",
    "452 4.3.2 Too many concurrent SMTP connections",
    "451 Concurrency limit reached for this account",
    "450 4.4.0 Hourly quota reached, slow down",  # a quota, but not a daily one
    "451 4.7.500 Server busy. Please try again later",
    "454 Throttling failure: Maximum sending rate exceeded.",
    "450 4.2.1 Peak SMTP relay limit exceeded for customer",  # about the sender, not a mailbox
]
# The channel waits until the provider's window frees: the sender's daily quota is used up.
QUOTAS = [
    "550 5.4.5 Daily user sending limit exceeded.",
    "550 5.4.5 Daily user sending quota exceeded. For more information on Gmail sending limits",
    # Gmail's multi-line reply, as smtplib joins it.
    "550 5.4.5 Daily user sending limit exceeded. For more information on Gmail 5.4.5 sending "
    "limits go to 5.4.5 https://support.google.com/a/answer/166852 - gsmtp",
    "550 5.4.5 Daily SMTP relay limit exceeded for customer",
    "550 5.7.1 Daily SMTP relay sending limit exceeded for customer",
    "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to "
    "process message due to a permanent exception with message Cannot submit message.",
    "550 5.2.2 Submission quota exceeded",
    "550 5.1.90 Your message can't be sent because you've reached your daily limit for message "
    "recipients",
    "454 Throttling failure: Daily message quota exceeded.",
]
# This message waits and is tried again, the others go: about the recipient or nothing named.
ONE_MESSAGE_WAITS = [
    "450 4.2.1 Mailbox busy, try later",
    "450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents "
    "additional messages from being delivered",
    "452 4.2.2 The email account that you tried to reach is over quota",
    "452 4.5.3 Too many recipients",
    "451 4.3.0 Local problem",
    "450 Requested mail action not taken: mailbox unavailable",
]
# This message fails with the server's words; the others go.
ONE_MESSAGE_FAILS = [
    "550 5.1.1 <pat@prospect.test>: Recipient address rejected: User unknown",
    "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
    "550 5.2.1 The email account that you tried to reach is disabled",
    "553 Sorry, pat@prospect.test is not allowed to receive mail",
    "552 5.2.2 Mailbox full: quota exceeded",  # the recipient's quota, not ours
    "554 5.7.1 Message rejected as spam",
    "550 5.7.1 This mail has been rate limited",  # a 5xx that names no daily limit
]


def _code(reply: str) -> int:
    return int(reply[:3])


@pytest.mark.parametrize("reply", RATE)
def test_rate_replies_hold_the_channel(reply: str) -> None:
    assert classify(_code(reply), reply) == BACKOFF
    assert failure_from_reply(_code(reply), reply[4:]).channel_level


@pytest.mark.parametrize("reply", QUOTAS)
def test_quota_replies_hold_the_channel_until_the_window_frees(reply: str) -> None:
    assert classify(_code(reply), reply) == QUOTA
    failure = failure_from_reply(_code(reply), reply[4:])
    assert failure.channel_level and failure.text == reply[:480]


@pytest.mark.parametrize("reply", ONE_MESSAGE_WAITS)
def test_other_temporary_replies_retry_that_message_only(reply: str) -> None:
    assert classify(_code(reply), reply) == RETRY
    assert not failure_from_reply(_code(reply), reply[4:]).channel_level


@pytest.mark.parametrize("reply", ONE_MESSAGE_FAILS)
def test_other_permanent_replies_fail_that_message_with_the_servers_words(reply: str) -> None:
    failure = failure_from_reply(_code(reply), reply[4:])
    assert failure.kind == PERMANENT and not failure.channel_level
    assert failure.text == reply


def test_a_refused_login_is_not_push_back() -> None:
    reply = "535 5.7.8 Username and Password not accepted"
    assert classify(535, reply) == AUTH
