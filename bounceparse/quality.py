"""Score the parser against a corpus with expected results (``expected.json``).

``python -m bounceparse.quality [CORPUS_DIR] [-v]`` prints the figures; the test suite asserts
them. Without a folder it scores the corpus vendored in the repository, ``tests/corpus/bounces``
(found from this file, so it works from any working directory).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .core import BOUNCE, parse

# The vendored corpus: <repo>/tests/corpus/bounces, next to this package.
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "bounces"


@dataclass
class Score:
    files: int = 0
    expected: int = 0
    found: int = 0
    matched: int = 0
    hard_agree: int = 0
    class_agree: int = 0
    reason_agree: int = 0
    false_bounces: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else 1.0

    @property
    def precision(self) -> float:
        return self.matched / self.found if self.found else 1.0

    def rate(self, count: int) -> float:
        return count / self.matched if self.matched else 1.0

    def lines(self) -> list[str]:
        return [
            f"files {self.files}, expected recipients {self.expected}, found {self.found}",
            f"recipient recall {self.recall:.4f}, precision {self.precision:.4f}",
            f"hard/soft agreement {self.rate(self.hard_agree):.4f}",
            f"status class agreement {self.rate(self.class_agree):.4f}",
            f"reason agreement {self.rate(self.reason_agree):.4f} (not part of the bar)",
            f"non-bounces counted as bounces: {len(self.false_bounces)}",
        ]


def score(corpus: Path, verbose: bool = False) -> Score:
    expected = json.loads((corpus / "expected.json").read_text())
    result = Score()
    for item in expected:
        result.files += 1
        got = parse((corpus / "emails" / item["file"]).read_bytes())
        want = {r["address"].lower(): r for r in item["recipients"]}
        if item["kind"] != BOUNCE:
            if got.kind == BOUNCE:
                result.false_bounces.append(item["file"])
            continue
        result.expected += len(want)
        found = {r.address: r for r in got.recipients}
        result.found += len(found)
        for address, exp in want.items():
            mine = found.get(address)
            if mine is None:
                result.misses.append(f"{item['file']}: missed {address}")
                continue
            result.matched += 1
            result.hard_agree += mine.hard == exp["hard"]
            result.class_agree += mine.status[:1] == str(exp["status"])[:1]
            result.reason_agree += mine.reason == exp["reason"]
            if verbose and (mine.reason != exp["reason"] or mine.hard != exp["hard"]):
                result.misses.append(
                    f"{item['file']}: {address} reason {mine.reason}/{exp['reason']} "
                    f"status {mine.status}/{exp['status']} hard {mine.hard}/{exp['hard']}"
                    f" | {mine.diagnostic[:140]}"
                )
        for address in found.keys() - want.keys():
            result.misses.append(f"{item['file']}: extra {address}")
    return result


def main(argv: list[str]) -> int:
    folders = [arg for arg in argv[1:] if arg != "-v"]
    corpus = Path(folders[0]) if folders else CORPUS
    if not (corpus / "expected.json").is_file() or not (corpus / "emails").is_dir():
        print(f"no corpus at {corpus}: it needs expected.json and emails/", file=sys.stderr)
        return 2
    result = score(corpus, verbose="-v" in argv)
    print("\n".join(result.lines()))
    if "-v" in argv:
        print("\n".join(result.misses + [f"false bounce: {f}" for f in result.false_bounces]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
