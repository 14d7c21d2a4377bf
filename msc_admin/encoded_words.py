"""Names and subjects written as MIME encoded words (RFC 2047: ``=?utf-8?q?Jos=C3=A9?=``), as a
mail client copies them and some CRMs export them, read as the words they stand for."""

from __future__ import annotations

from email.header import decode_header, make_header


def decoded(text: str) -> str:
    """``text`` with its encoded words decoded and its white space collapsed; text with none
    (or encoded words that cannot be read) as it is."""
    if "=?" not in text:
        return text
    try:
        return " ".join(str(make_header(decode_header(text))).split())
    except (ValueError, LookupError, UnicodeError, AssertionError):
        return text
