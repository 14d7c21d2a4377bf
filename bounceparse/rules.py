"""Which rule families are switched off, for measuring generalisation.

Every vendor format (``lhost``) and provider table (``rhost``) names the corpus families whose
samples it was written against. ``python -m bounceparse.quality --holdout`` scores each family
with the rules written only for that family switched off; normal parsing switches nothing off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_DISABLED: ContextVar[frozenset[str]] = ContextVar("disabled_families", default=frozenset())


def any_held_out() -> bool:
    """Whether a family is held out now (a quality run): the rules' hot loops ask once."""
    return bool(_DISABLED.get())


def enabled(families: frozenset[str]) -> bool:
    """A rule is off when every family that motivated it is held out."""
    off = _DISABLED.get()
    return not off or not families or not families <= off


@contextmanager
def holding_out(*families: str) -> Iterator[None]:
    token = _DISABLED.set(frozenset(families))
    try:
        yield
    finally:
        _DISABLED.reset(token)
