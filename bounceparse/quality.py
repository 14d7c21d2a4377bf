"""Score the parser against a corpus with expected results (``expected.json``).

``python -m bounceparse.quality [CORPUS_DIR] [-v] [--holdout] [--no-vendor-rules] [--confusion]``
prints the figures; the test suite asserts them. Without a folder it scores the corpus vendored in
the repository, ``tests/corpus/bounces`` (found from this file, so it works from any working
directory).

``--holdout`` scores each file with the rules written for its own family switched off: every
vendor format (``lhost``) and provider table (``rhost``) names the corpus families whose samples
it was written against, and a file of family F is parsed with the rules named only by F disabled.
A rule that only fits the files it was written for shows up as a lower held-out figure.
``--no-vendor-rules`` switches all of them off: what the general rules alone achieve.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import lhost, rhost
from .core import BOUNCE, parse
from .rules import holding_out

# The vendored corpus: <repo>/tests/corpus/bounces, next to this package.
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "bounces"

# Files where Sisimai 5.1 (which wrote expected.json) reports "not a bounce" but a person reading
# the message sees a delivery failure with a named recipient. We count them as bounces: a
# tracking product that ignores "kijitora@example.org [User unknown]" from MAILER-DAEMON keeps
# mailing a dead address. Each entry says what the message is.
DISPUTED = {
    "lhost-mfilter-05.eml": "postmaster: base64 Japanese failure notice, 452 4.3.1 after DATA",
    "lhost-mimecast-01.eml": "Mimecast 'Email Delivery Failure' naming the recipient: 5.4.1",
    "lhost-x1-03.eml": "MAILER-DAEMON 'Mail Delivery Failure': 'kijitora@... [User unknown]'",
    "not-rb-issue-368-bug.eml": "postmaster 'email bounce notification': Mailbox full",
}


def family(name: str) -> str:
    """A corpus file's family: "lhost-postfix-03.eml" -> "lhost-postfix", "arf-01.eml" ->
    "arf", "not-is-not-bounce-01.eml" -> "not"."""
    stem = name.removesuffix(".eml")
    head = stem.split("-", 1)[0]
    if head in ("lhost", "rhost"):
        return re.sub(r"-\d+$", "", stem)
    return head


def all_families() -> frozenset[str]:
    tagged: set[str] = set()
    for vendor in lhost.VENDORS:
        tagged |= vendor.families
    for _name, _parts, _rule, families in rhost.PROVIDERS:
        tagged |= families
    return frozenset(tagged)


@dataclass
class Score:
    files: int = 0
    expected: int = 0
    found: int = 0
    matched: int = 0
    hard_agree: int = 0
    class_agree: int = 0
    reason_agree: int = 0
    non_bounces: int = 0
    false_bounces: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else 1.0

    @property
    def precision(self) -> float:
        return self.matched / self.found if self.found else 1.0

    def rate(self, count: int) -> float:
        return count / self.matched if self.matched else 1.0

    @property
    def undisputed_false_bounces(self) -> list[str]:
        return [name for name in self.false_bounces if name not in DISPUTED]

    def lines(self) -> list[str]:
        disputed = len(self.false_bounces) - len(self.undisputed_false_bounces)
        return [
            f"files {self.files}, expected recipients {self.expected}, found {self.found}",
            f"recipient recall {self.recall:.4f}, precision {self.precision:.4f}",
            f"hard/soft agreement {self.rate(self.hard_agree):.4f}",
            f"status class agreement {self.rate(self.class_agree):.4f}",
            f"reason agreement {self.rate(self.reason_agree):.4f}",
            f"non-bounces counted as bounces: {len(self.undisputed_false_bounces)} of "
            f"{self.non_bounces - disputed} (and {disputed} of the {len(DISPUTED)} disputed)",
        ]


def score(
    corpus: Path, verbose: bool = False, *, holdout: bool = False, no_vendor_rules: bool = False
) -> Score:
    expected = json.loads((corpus / "expected.json").read_text())
    result = Score()
    everything = all_families() if no_vendor_rules else frozenset()
    for item in expected:
        result.files += 1
        name = item["file"]
        held = everything if no_vendor_rules else {family(name)} if holdout else ()
        with holding_out(*held):
            got = parse((corpus / "emails" / name).read_bytes())
        want = {r["address"].lower(): r for r in item["recipients"]}
        if item["kind"] != BOUNCE:
            result.non_bounces += 1
            if got.kind == BOUNCE:
                result.false_bounces.append(name)
            continue
        result.expected += len(want)
        found = {r.address: r for r in got.recipients}
        result.found += len(found)
        for address, exp in want.items():
            mine = found.get(address)
            if mine is None:
                result.misses.append(f"{name}: missed {address}")
                continue
            result.matched += 1
            result.hard_agree += mine.hard == exp["hard"]
            result.class_agree += mine.status[:1] == str(exp["status"])[:1]
            result.reason_agree += mine.reason == exp["reason"]
            if mine.reason != exp["reason"]:
                result.confusion[(exp["reason"], mine.reason)] += 1
            if verbose and (mine.reason != exp["reason"] or mine.hard != exp["hard"]):
                result.misses.append(
                    f"{name}: {address} reason {mine.reason}/{exp['reason']} "
                    f"status {mine.status}/{exp['status']} hard {mine.hard}/{exp['hard']}"
                    f" | {mine.diagnostic[:140]}"
                )
        for address in found.keys() - want.keys():
            result.misses.append(f"{name}: extra {address}")
    return result


def main(argv: list[str]) -> int:
    flags = {arg for arg in argv[1:] if arg.startswith("-")}
    folders = [arg for arg in argv[1:] if not arg.startswith("-")]
    corpus = Path(folders[0]) if folders else CORPUS
    if not (corpus / "expected.json").is_file() or not (corpus / "emails").is_dir():
        print(f"no corpus at {corpus}: it needs expected.json and emails/", file=sys.stderr)
        return 2
    verbose = "-v" in flags
    result = score(
        corpus,
        verbose=verbose,
        holdout="--holdout" in flags,
        no_vendor_rules="--no-vendor-rules" in flags,
    )
    print("\n".join(result.lines()))
    if verbose or "--confusion" in flags:
        print("reason confusion (expected -> ours):")
        for (want, got), count in result.confusion.most_common():
            print(f"  {count:3d}  {want} -> {got}")
    if verbose:
        print("\n".join(result.misses + [f"false bounce: {f}" for f in result.false_bounces]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
