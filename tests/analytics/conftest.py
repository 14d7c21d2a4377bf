"""Sending fixtures (a loopback relay, the team channel, the rep's identity) for analytics."""

from tests.sending.conftest import contact, relay, rep_identity, team_channel  # noqa: F401
