"""Errors of the shared pure rules in proto/ (E.164 numbers). The SIP grammar's errors are
in proto/sip/errors.py."""

from __future__ import annotations


class InvalidNumber(ValueError):
    """Not a phone number this system can route; the message says why, for an API user."""
