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
import functools
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
    Latin-1 where the bytes are not UTF-8), decoded when first asked for; encoded words are left
    as they are."""

    __slots__ = ("_all", "_fields", "_first")

    def __init__(self, fields: list[tuple[str, bytes]]) -> None:
        self._fields = fields
        # Each name's first value: its bytes until first asked for, then its text. The vendor
        # rules ask some forty names of every bounce, most of them absent: one look-up each.
        first: dict[str, bytes | str] = {}
        for name, value in fields:
            first.setdefault(name, value)
        self._first = first
        self._all: dict[str, list[bytes]] | None = None

    def get(self, name: str, default: str = "") -> str:
        found = self._first.get(name)
        if found is None:
            return default
        if isinstance(found, bytes):
            found = self._first[name] = _value(found)
        return found

    def get_all(self, name: str) -> list[str]:
        if name not in self._first:
            return []
        if self._all is None:  # asked for several names: one pass over the fields for all
            self._all = {}
            for key, value in self._fields:
                self._all.setdefault(key, []).append(value)
        return [_value(value) for value in self._all[name]]

    def __contains__(self, name: object) -> bool:
        return name in self._first


def _value(raw: bytes) -> str:
    if b"\n" in raw:
        raw = _FOLD.sub(b" ", raw)
    return _text(raw.strip())


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)(?:\n|\Z)")
_FOLD = re.compile(rb"[ \t]*\n[ \t]*")
_UNFOLD = re.compile(rb"\n[ \t]+")


def read_headers(data: bytes, start: int, end: int, caps: Caps) -> tuple[Headers, int]:
    """The header block that starts at ``start`` and where the body begins. The block ends at
    the first empty line; a line that is neither a field nor a continuation starts the body, as
    in the standard library."""
    at = start
    if data.startswith(b"From ", start, end):  # an mbox separator line, not a header
        nl = data.find(b"\n", start, end)
        at = end if nl < 0 else nl + 1
    if data.startswith(b"\n", at, end):  # no headers at all
        return Headers([]), at + 1
    blank = data.find(b"\n\n", at, end)
    block_end = end if blank < 0 else blank + 1
    fields: list[tuple[str, bytes]] = []
    pos = at
    for one in _FIELD.finditer(data, at, block_end):  # the usual case: field after field
        if one.start() != pos:
            break
        fields.append((one.group(1).decode("ascii").lower(), one.group(2)))
        pos = one.end()
    while pos < block_end:
        m = _FIELD.match(data, pos, block_end)
        if m is None:
            nl = data.find(b"\n", pos, block_end)
            stop = block_end if nl < 0 else nl
            if fields and fields[-1][1].rstrip().endswith(b";"):
                # A parameter list continued without the folding space some mailers omit
                # ("multipart/alternative;" + "boundary=...").
                name, value = fields[-1]
                fields[-1] = (name, value + b"\n " + data[pos:stop].strip())
                pos = stop + 1
                continue
            break  # not a header: the body starts here
        fields.append((m.group(1).decode("ascii").lower(), m.group(2)))
        pos = m.end()
    limit = caps.max_header_line
    if pos - at > limit and any(len(line) > limit for line in data[at:pos].split(b"\n")):
        raise Refused(f"header line longer than {limit} bytes")
    if pos < block_end:  # the body started without an empty line
        return Headers(fields), pos
    return Headers(fields), (min(blank + 2, end) if blank >= 0 else end)


def header_text(data: bytes, start: int, end: int) -> str:
    """The header block at ``start`` as text, folded lines joined: what attribution reads of a
    returned message (its Message-ID, To, our X-MSC-Message)."""
    if data.startswith(b"From ", start, end):
        nl = data.find(b"\n", start, end)
        start = end if nl < 0 else nl + 1
    blank = data.find(b"\n\n", start, end)
    block = data[start : end if blank < 0 else blank]
    return _text(_UNFOLD.sub(b" ", block))


_PARAM = re.compile(r';\s*([A-Za-z0-9*_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


@functools.lru_cache(maxsize=512)
def content_type(value: str) -> tuple[str, dict[str, str]]:
    """("type/subtype" lower-cased, {param: value}) of a Content-Type field. Cached (a
    message's own type is read three times, and most parts are "text/plain"): callers only
    read the parameters, never change them."""
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
                found.originals.append(header_text(data, body, stop))
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
