"""``manage.py send_due --every N``, the embedded demo's stand-in for beat: one failing tick is
logged and the loop goes on (it used to die, and with it every later send of the demo)."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.management import call_command


class _Stop(BaseException):
    """Ends the endless loop from inside the test."""


def test_a_failing_tick_is_logged_and_the_next_one_runs(caplog) -> None:
    ticks = mock.Mock(side_effect=[RuntimeError("no such table"), 2, _Stop()])
    path = "demo.management.commands.send_due"
    with mock.patch(f"{path}.dispatch_due", ticks), pytest.raises(_Stop):
        call_command("send_due", every=0.001)
    assert ticks.call_count == 3
    assert "The sending dispatcher's tick failed" in caplog.text
    assert "no such table" in caplog.text


def test_run_once_a_failure_still_reaches_the_caller() -> None:
    with (
        mock.patch("demo.management.commands.send_due.dispatch_due", side_effect=RuntimeError),
        pytest.raises(RuntimeError),
    ):
        call_command("send_due")


def test_with_scan_it_also_classifies_receiving_domains_as_beat_would() -> None:
    path = "demo.management.commands.send_due"
    with (
        mock.patch(f"{path}.dispatch_due", return_value=0),
        mock.patch(f"{path}.dispatch_scans") as scans,
        mock.patch(f"{path}.classify_recent", return_value=3) as classify,
    ):
        call_command("send_due", scan=True)
    assert scans.call_count == classify.call_count == 1
