"""Just enough MIME for bounces: a header scan and a boundary splitter over the raw bytes.

``email.message_from_bytes`` builds every part of a message, the returned original's included,
and the parser used to spend half its time there. Here one pass over the bytes finds the
structure (headers, boundaries, content types) and only the parts a verdict reads are decoded:
the delivery-status parts, the readable text outside the returned copy, and the header block of
the returned copy. A returned message is kept as a byte range and read only when the bounce
turns out to be a bounce of a bounce.

The caps (parts, nesting depth, header line length, text size) are checked here, while reading.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field


class Refused(ValueError):
    """The message breaks one of the caps."""


@dataclass(frozen=True)
class Caps:
    max_parts: int
    max_depth: int
    max_header_line: int
    max_text: int


class Headers:
    """A header block: lower-cased names, unfolded values, in order. Values are text (UTF-8, or
    Latin-1 where the bytes are not UTF-8); encoded words are left as they are."""

    __slots__ = ("_fields", "_first")

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        first: dict[str, str] = {}
        for name, value in fields:
            first.setdefault(name, value)
        self._first = first

    def get(self, name: str, default: str = "") -> str:
        return self._first.get(name, default)

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self._fields if key == name]

    def __contains__(self, name: object) -> bool:
        return name in self._first

    def names(self) -> set[str]:
        return set(self._first)

    def text(self) -> str:
        """The block as "Name: value" lines (names lower-cased)."""
        return "\n".join(f"{name}: {value}" for name, value in self._fields)


_HEADER_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_headers(data: bytes, start: int, end: int, caps: Caps) -> tuple[Headers, int]:
    """The header block that starts at ``start`` and where the body begins. The block ends at
    the first empty line; a line that is neither a field nor a continuation starts the body, as
    in the standard library."""
    fields: list[tuple[str, str]] = []
    name = ""
    value: list[bytes] = []
    at = start
    limit = caps.max_header_line
    if data.startswith(b"From ", start, end):  # an mbox separator line, not a header
        nl = data.find(b"\n", start, end)
        at = end if nl < 0 else nl + 1
    while at < end:
        nl = data.find(b"\n", at, end)
        stop = end if nl < 0 else nl
        if stop - at > limit:
            raise Refused(f"header line longer than {limit} bytes")
        if stop == at:  # the empty line
            at = stop + 1
            break
        first = data[at]
        if first in (0x20, 0x09) and name:
            value.append(data[at:stop].strip())
        else:
            m = _HEADER_NAME.match(data, at, stop)
            if not m:
                if name and value and value[-1].endswith(b";"):
                    # A parameter list continued without the folding space some mailers omit
                    # ("multipart/alternative;" + "boundary=...").
                    value.append(data[at:stop].strip())
                    at = stop + 1 if nl >= 0 else end
                    continue
                break  # not a header: the body starts here
            if name:
                fields.append((name, _text(b" ".join(value))))
            name = m.group(1).decode("ascii").lower()
            value = [data[m.end() : stop].strip()]
        at = stop + 1 if nl >= 0 else end
    if name:
        fields.append((name, _text(b" ".join(value))))
    return Headers(fields), min(at, end)


_PARAM = re.compile(r';\s*([A-Za-z0-9*_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


def content_type(value: str) -> tuple[str, dict[str, str]]:
    """("type/subtype" lower-cased, {param: value}) of a Content-Type field."""
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    if rest:
        for m in _PARAM.finditer(";" + rest):
            key = m.group(1).lower()
            params.setdefault(key, m.group(2) if m.group(2) is not None else m.group(3))
    kind = kind.strip().lower()
    if "/" not in kind:
        kind = "text/plain"
    return kind, params


def decode_body(raw: bytes, encoding: str) -> bytes:
    """The body without its transfer encoding (base64, quoted-printable); anything else, or a
    body that does not decode, is kept as it is."""
    encoding = encoding.strip().lower()
    try:
        if encoding == "base64":
            try:
                return binascii.a2b_base64(raw)
            except binascii.Error:
                cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", raw)
                return binascii.a2b_base64(cleaned[: len(cleaned) // 4 * 4])
        if encoding == "quoted-printable":
            return binascii.a2b_qp(raw)
    except (binascii.Error, ValueError):
        return raw
    return raw


def to_text(raw: bytes, charset: str) -> str:
    charset = (charset or "utf-8").strip().strip('"').lower() or "utf-8"
    try:
        text = raw.decode(charset, errors="replace")
    except LookupError:
        text = raw.decode("latin-1", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


DSN_TYPES = frozenset(
    {
        "message/delivery-status",
        "text/delivery-status",
        "message/global-delivery-status",
        "text/x-delivery-status",
    }
)
ORIGINAL_TYPES = frozenset(
    {
        "message/rfc822",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global",
        "message/global-headers",
        "text/rfc822",
        "message/partial",
    }
)
# Of the returned copies, those that are a whole message (the others are headers only).
_WHOLE = frozenset({"message/rfc822", "message/global", "text/rfc822", "message/partial"})


@dataclass
class Parts:
    """What a verdict reads of one message."""

    headers: Headers
    dsn: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    originals: list[str] = field(default_factory=list)  # header blocks of the returned message
    inner: list[tuple[int, int]] = field(default_factory=list)  # returned messages (byte ranges)
    complaint: bool = False


def _boundaries(data: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """The byte ranges of a multipart's children, or [] when no delimiter line is found. A
    delimiter is a line "--boundary" (optionally followed by white space); "--boundary--" closes
    the multipart. The line end before a delimiter belongs to the delimiter."""
    if not boundary:
        return []
    delimiter = b"--" + boundary
    marker = b"\n" + delimiter
    lines: list[tuple[int, int, bool]] = []  # (line start, line end, closing)
    if data.startswith(delimiter, start, end):
        candidate = start
    else:
        hit = data.find(marker, start, end)
        candidate = hit + 1 if hit >= 0 else -1
    while candidate >= 0:
        after = candidate + len(delimiter)
        nl = data.find(b"\n", after, end)
        stop = end if nl < 0 else nl
        closing = data[after : after + 2] == b"--"
        if closing or not data[after:stop].strip():
            lines.append((candidate, stop, closing))
            if closing:
                break
        if nl < 0:
            break
        hit = data.find(marker, stop, end)
        candidate = hit + 1 if hit >= 0 else -1
    children = []
    for index, (_, line_end, closing) in enumerate(lines):
        if closing:
            break
        child_start = min(line_end + 1, end)
        child_end = lines[index + 1][0] - 1 if index + 1 < len(lines) else end
        children.append((child_start, max(child_start, child_end)))
    return children


def walk(data: bytes, caps: Caps, start: int = 0, end: int | None = None) -> Parts:
    """Read the structure of the message in ``data[start:end]``."""
    end = len(data) if end is None else end
    headers, body = read_headers(data, start, end, caps)
    found = Parts(headers=headers)
    stack: list[tuple[Headers, int, int, int]] = [(headers, body, end, 0)]
    seen = 0
    while stack:
        part, body, stop, depth = stack.pop()
        seen += 1
        if seen > caps.max_parts:
            raise Refused(f"more than {caps.max_parts} MIME parts")
        if depth > caps.max_depth:
            raise Refused(f"MIME parts nested deeper than {caps.max_depth}")
        kind, params = content_type(part.get("content-type", "text/plain"))
        if kind == "message/feedback-report":
            found.complaint = True
            continue
        if kind in DSN_TYPES:
            found.dsn.append(_decoded(data, body, stop, part, params, caps))
            continue
        if kind in ORIGINAL_TYPES:
            if kind in _WHOLE and part.get("content-transfer-encoding", "").lower() not in (
                "base64",
                "quoted-printable",
            ):
                inner_headers, _ = read_headers(data, body, stop, caps)
                found.originals.append(inner_headers.text())
                found.inner.append((body, stop))
            else:
                found.originals.append(_decoded(data, body, stop, part, params, caps))
            continue
        if kind.startswith("multipart/"):
            boundary = params.get("boundary", "")
            children = _boundaries(data, body, stop, boundary.encode("utf-8", "replace"))
            if children:
                if len(children) > caps.max_parts:
                    raise Refused(f"more than {caps.max_parts} MIME parts")
                for child_start, child_end in reversed(children):
                    child_headers, child_body = read_headers(data, child_start, child_end, caps)
                    stack.append((child_headers, child_body, child_end, depth + 1))
            elif body < stop and not found.texts:
                # No part delimiter anywhere: the body is text (a report whose multipart
                # wrapper was lost on the way still reads as one).
                found.texts.append(_decoded(data, body, stop, part, {}, caps))
            continue
        if not kind.startswith("text/"):
            continue
        disposition = part.get("content-disposition", "").lower()
        if disposition.startswith("attachment") and kind != "text/plain":
            continue
        text = _decoded(data, body, stop, part, params, caps)
        (found.htmls if kind == "text/html" else found.texts).append(text)
    return found


def _decoded(
    data: bytes, start: int, end: int, part: Headers, params: dict[str, str], caps: Caps
) -> str:
    raw = data[start:end]
    encoding = part.get("content-transfer-encoding", "")
    if encoding:
        raw = decode_body(raw[: caps.max_text * 2], encoding)
    return to_text(raw[: caps.max_text], params.get("charset", ""))
