"""One line of bounce figures, as the analytics pages and the staff console show them."""

from __future__ import annotations

from typing import Protocol


class _Counts(Protocol):
    @property
    def sent(self) -> int: ...
    @property
    def hard(self) -> int: ...
    @property
    def soft(self) -> int: ...


class BounceFigures:
    """What follows from ``sent``, ``hard`` and ``soft`` (fields, or properties summing parts)."""

    @property
    def bounced(self: _Counts) -> int:
        return self.hard + self.soft

    @property
    def rate(self: _Counts) -> float:
        """Bounced mail as a share of sent mail, 0 when nothing was sent."""
        return (self.hard + self.soft) / self.sent if self.sent else 0.0


class _Responses(Protocol):
    @property
    def sent(self) -> int: ...
    @property
    def complained(self) -> int: ...
    @property
    def replied(self) -> int: ...


class ResponseFigures:
    """What follows from ``sent``, ``complained`` and ``replied``: their rates, as a percentage
    of sent mail (0 when nothing was sent). Complaint rates are small (providers act at 0.3 %),
    so pages show them to one decimal."""

    @property
    def complaint_pct(self: _Responses) -> float:
        return 100 * self.complained / self.sent if self.sent else 0.0

    @property
    def reply_pct(self: _Responses) -> float:
        return 100 * self.replied / self.sent if self.sent else 0.0
