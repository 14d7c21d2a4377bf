"""The parser on its own: the corpus bar, the command-line contract, hostile input."""

from __future__ import annotations

import functools
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import bounceparse
from bounceparse.quality import DISPUTED, score
from tests.bounces.conftest import corpus


def test_corpus_quality_bar() -> None:
    result = score(corpus())
    print("\n".join(result.lines()))
    assert result.recall >= 0.97
    assert result.precision >= 0.98
    assert result.rate(result.hard_agree) >= 0.95
    assert result.rate(result.class_agree) >= 0.97
    assert result.rate(result.reason_agree) >= 0.90
    assert result.undisputed_false_bounces == []


def test_disputed_files_are_real_bounces() -> None:
    for name in DISPUTED:
        result = bounceparse.parse((corpus() / "emails" / name).read_bytes())
        assert result.kind == bounceparse.BOUNCE, name
        assert len(result.recipients) == 1, name


def test_corpus_held_out_figures_stay_above_a_floor() -> None:
    """Each family scored with the rules written for it switched off: what the parser does for
    a mail server it has no rules for. A floor, far under the bar, that catches a general rule
    broken while a vendor's rule hides it."""
    result = score(corpus(), holdout=True)
    print("\n".join(result.lines()))
    assert result.recall >= 0.95
    assert result.rate(result.class_agree) >= 0.95
    assert result.rate(result.reason_agree) >= 0.75
    assert result.undisputed_false_bounces == []


def test_complaints_and_auto_replies_are_not_bounces() -> None:
    kinds = {
        path.name: bounceparse.parse(path.read_bytes()).kind
        for path in sorted((corpus() / "emails").glob("arf-*.eml"))
    }
    assert bounceparse.BOUNCE not in kinds.values()
    assert list(kinds.values()).count(bounceparse.COMPLAINT) >= len(kinds) - 1, kinds
    for path in sorted((corpus() / "emails").glob("rfc3834-*.eml")):
        assert bounceparse.parse(path.read_bytes()).kind == bounceparse.AUTO_REPLY, path.name


def test_line_ends_do_not_change_the_verdict() -> None:
    for path in sorted((corpus() / "emails").glob("*.eml"))[::7]:
        lf = path.read_bytes()
        if b"\r" in lf:
            continue  # already mixed: replacing its line ends adds blank lines
        base = bounceparse.parse(lf)
        for variant in (lf.replace(b"\n", b"\r\n"), lf.replace(b"\n", b"\r")):
            other = bounceparse.parse(variant)
            assert other.kind == base.kind, path.name
            assert [r.address for r in other.recipients] == [r.address for r in base.recipients]


def test_parser_core_does_not_import_django() -> None:
    code = "import sys, bounceparse; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_standard_dsn_fields() -> None:
    raw = (Path(__file__).parent / "postfix-dsn.eml").read_bytes()
    result = bounceparse.parse(raw)
    assert result.kind == "bounce"
    assert result.original_message_id == "<msc.abc123@acme.test>"
    (r,) = result.recipients
    assert (r.address, r.status, r.smtp_code, r.reason, r.hard) == (
        "pat@prospect.test",
        "5.1.1",
        "550",
        "userunknown",
        True,
    )
    assert "User unknown" in r.diagnostic


def _text_bounce(body: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.net\nTo: rep@acme.test\n"
        "Subject: Undelivered Mail Returned to Sender\n\n"
        f"I could not deliver your message.\n\n{body}"
    ).encode()


def test_a_reply_written_around_the_address_is_quoted_whole() -> None:
    (r,) = bounceparse.parse(_text_bounce("550 5.1.1 <z@example.com> user unknown\n")).recipients
    assert (r.address, r.status, r.smtp_code, r.reason, r.hard) == (
        "z@example.com",
        "5.1.1",
        "550",
        "userunknown",
        True,
    )
    assert r.diagnostic == "550 5.1.1 <z@example.com> user unknown"


def test_each_recipient_keeps_the_reply_on_its_own_line() -> None:
    result = bounceparse.parse(
        _text_bounce(
            "550 5.1.1 <z@example.com> user unknown\n452 4.2.2 <y@example.com> mailbox full\n"
        )
    )
    assert [
        (r.address, r.status, r.smtp_code, r.reason, r.diagnostic) for r in result.recipients
    ] == [
        ("z@example.com", "5.1.1", "550", "userunknown", "550 5.1.1 <z@example.com> user unknown"),
        ("y@example.com", "4.2.2", "452", "mailboxfull", "452 4.2.2 <y@example.com> mailbox full"),
    ]


# --- parse_bounces ------------------------------------------------------------------------


def test_parse_bounces_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b.eml").write_bytes((Path(__file__).parent / "postfix-dsn.eml").read_bytes())
    (tmp_path / "a.eml").write_bytes(b"From: friend@example.com\nSubject: lunch?\n\nSee you.\n")
    (tmp_path / "c.eml").write_bytes(b"\x00\xff" * 10)
    call_command("parse_bounces", str(tmp_path), str(tmp_path / "missing.eml"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == ["a.eml", "b.eml", "c.eml", "missing.eml"]
    assert lines[0] == {
        "file": "a.eml",
        "kind": "not_bounce",
        "recipients": [],
        "original_message_id": None,
        "evidence": {
            "source": "none",
            "rule": "no-evidence",
            "detail": "nothing reports a failed delivery",
            "format": "",
        },
        "parser_version": bounceparse.PARSER_VERSION,
    }
    assert lines[1]["kind"] == "bounce"
    assert lines[1]["original_message_id"] == "<msc.abc123@acme.test>"
    assert list(lines[1]) == [
        "file",
        "kind",
        "recipients",
        "original_message_id",
        "evidence",
        "parser_version",
    ]
    assert list(lines[1]["recipients"][0]) == [
        "address",
        "status",
        "smtp_code",
        "reason",
        "hard",
        "diagnostic",
        "evidence",
    ]
    assert lines[1]["recipients"][0]["evidence"] == {
        "source": "dsn",
        "rule": "status",
        "detail": "5.1.1",
        "format": "",
    }
    assert lines[1]["evidence"]["rule"] == "delivery-status"
    assert lines[2]["kind"] == "not_bounce"
    assert lines[3]["kind"] == "not_bounce" and "cannot read" in lines[3]["error"]
    assert lines[3]["evidence"]["rule"] == "refused"
    assert {line["parser_version"] for line in lines} == {"2.0"}


def _bytes_read_by_this_process() -> int:
    """What the kernel has handed this process through read() so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_parse_bounces_reads_only_the_start_of_a_huge_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = tmp_path / "huge.eml"
    huge.write_bytes((Path(__file__).parent / "postfix-dsn.eml").read_bytes())
    os.truncate(huge, 1 << 30)  # 1 GiB, sparse: past the bounce it reads as zeros
    before = _bytes_read_by_this_process()
    call_command("parse_bounces", str(huge))
    read = _bytes_read_by_this_process() - before
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert line["file"] == "huge.eml" and line["kind"] == "bounce"
    assert [r["address"] for r in line["recipients"]] == ["pat@prospect.test"]
    # The parser's size cap, and a little for whatever else the process read meanwhile.
    assert read <= bounceparse.Limits().max_bytes + 500_000, f"read {read:,} bytes"


# --- hostile input --------------------------------------------------------------------------

BUDGET = 2.0  # seconds for any one message, on the slowest CI machine


@functools.cache
def _corpus_samples() -> list[bytes]:
    return [p.read_bytes() for p in sorted((corpus() / "emails").glob("*.eml"))[::9]]


HOSTILE = [
    b"Content-Type: multipart/mixed; boundary=a\n\n"
    + b"--a\nContent-Type: multipart/mixed; boundary=a\n\n" * 3000,
    b"From: MAILER-DAEMON@x\nSubject: Undeliverable\n\n" + b"a" * 1_500_000 + b"@example.com",
    b"Subject: " + b"A" * 500_000 + b"\n\nbody",
    b"From: MAILER-DAEMON@x\nSubject: failure\n\n" + b"x@y.zz " * 100_000,
    b"Content-Type: message/delivery-status\n\n" + b"Final-Recipient: rfc822; a@b.cc\n" * 50_000,
]


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_shapes_answer_quickly(raw: bytes) -> None:
    started = time.perf_counter()
    result = bounceparse.parse(raw)
    assert time.perf_counter() - started < BUDGET
    assert result.kind in {"bounce", "complaint", "auto_reply", "not_bounce"}


def _nested(depth: int) -> bytes:
    """A bounce whose text sits inside ``depth`` multiparts, each with its own boundary."""
    lines = [
        "From: MAILER-DAEMON@mx.example.net",
        "Subject: Undelivered Mail Returned to Sender",
        "MIME-Version: 1.0",
        "Content-Type: multipart/mixed; boundary=b0",
        "",
    ]
    for level in range(1, depth):
        lines += [f"--b{level - 1}", f"Content-Type: multipart/mixed; boundary=b{level}", ""]
    lines += [f"--b{depth - 1}", "Content-Type: text/plain", "", "550 5.1.1 <z@example.com> gone"]
    lines += [f"--b{level}--" for level in reversed(range(depth))]
    return "\n".join(lines).encode() + b"\n"


def _returned_within_returned(depth: int) -> bytes:
    raw = b"Content-Type: text/plain\n\n550 5.1.1 <z@example.com> gone\n"
    for _ in range(depth):
        raw = b"From: MAILER-DAEMON@mx.example.net\nContent-Type: message/rfc822\n\n" + raw
    return raw


def test_the_depth_cap_stops_deep_nesting_before_python_recursion_does() -> None:
    cap = bounceparse.Limits().max_depth
    assert bounceparse.parse(_nested(cap)).kind == bounceparse.BOUNCE  # at the cap: read
    # Far less stack than 5,000 levels of recursion would take (the default limit is 1,000).
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 150)
    try:
        deep = bounceparse.parse(_nested(5000))
        chain = bounceparse.parse(_returned_within_returned(5000))
    finally:
        sys.setrecursionlimit(old_limit)
    assert (deep.kind, deep.error) == ("not_bounce", f"MIME parts nested deeper than {cap}")
    assert deep == bounceparse.parse(_nested(cap + 1))
    assert chain.kind == "not_bounce" and chain.error is None  # read down to the cap, no crash


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=st.integers(min_value=-1, max_value=10_000),  # a corpus sample; -1: junk alone
    cut=st.integers(min_value=0, max_value=20_000),
    junk=st.binary(max_size=400),
    where=st.integers(min_value=0, max_value=20_000),
)
@example(sample=-1, cut=0, junk=b"\r\r\n\x00--", where=0)
def test_mangled_corpus_never_raises(sample: int, cut: int, junk: bytes, where: int) -> None:
    samples = _corpus_samples()
    base = samples[sample % len(samples)] if sample >= 0 else b""
    raw = base[: max(cut, 1)] if cut else base
    raw = raw[:where] + junk + raw[where:]
    started = time.perf_counter()
    result = bounceparse.parse(raw)
    assert time.perf_counter() - started < BUDGET
    assert result.kind in {"bounce", "complaint", "auto_reply", "not_bounce"}
    json.dumps(result.as_dict())
