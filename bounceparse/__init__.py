"""A bounce parser with no Django in it: ``parse(raw) -> Result``.

See ``core`` for the order of evidence and ``reasons`` for the taxonomy.
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
from .reasons import is_hard

__all__ = [
    "AUTO_REPLY",
    "BOUNCE",
    "COMPLAINT",
    "NOT_BOUNCE",
    "Limits",
    "Recipient",
    "Result",
    "describe_failure",
    "is_hard",
    "parse",
]
