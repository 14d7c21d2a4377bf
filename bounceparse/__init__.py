"""A bounce parser with no Django in it: ``parse(raw) -> Result``.

See ``core`` for the order of evidence, ``reasons`` for the taxonomy and how a reason is chosen,
``lhost`` and ``rhost`` for what particular servers and providers say, ``evidence`` for how each
verdict is explained, ``labels`` for the reasons in human words.
"""

from .core import (
    AUTO_REPLY,
    BOUNCE,
    COMPLAINT,
    NOT_BOUNCE,
    Limits,
    Recipient,
    Result,
    describe_failure,
    parse,
)
from .evidence import PARSER_VERSION, Evidence, describe
from .labels import LABELS, label
from .reasons import REASONS, is_hard

__all__ = [
    "AUTO_REPLY",
    "BOUNCE",
    "COMPLAINT",
    "LABELS",
    "NOT_BOUNCE",
    "PARSER_VERSION",
    "REASONS",
    "Evidence",
    "Limits",
    "Recipient",
    "Result",
    "describe",
    "describe_failure",
    "is_hard",
    "label",
    "parse",
]
