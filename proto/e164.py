"""The one E.164 normaliser: provisioned numbers (config's API) and dialled numbers (the
user part of a carrier's INVITE, signaling) go through the same rules, so a number a user
provisioned is found again under the form a carrier sends.

A number is accepted when its length is possible for its country code (libphonenumber's
IS_POSSIBLE), not only when it is assigned: test numbers like +1555... must be usable."""

from __future__ import annotations

import re

import phonenumbers

from .errors import InvalidNumber

_MAX_LENGTH = 32
_INTERNATIONAL = re.compile(r"\+[0-9 ().\-]+")
_ANY = re.compile(r"\+?[0-9 ().\-]+")
_WHY = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short for its country code",
    phonenumbers.ValidationResult.TOO_LONG: "too long for its country code",
}


def _possible(parsed: phonenumbers.PhoneNumber) -> str | None:
    """None when the number is possible, else why not."""
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason == phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return _WHY.get(reason, "not a possible number for its country code")


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as e:
        raise InvalidNumber(f"not a phone number: {e}") from None


def normalize_e164(value: str, *, region: str | None = None) -> str:
    """`+1 (555) 123-4567` -> `+15551234567`; raise InvalidNumber with the reason otherwise.

    Digits and the separators ` ().-` only (no letters, no extensions). With ``region=None``
    the number must be international (`+` and the country code): what a user provisions.
    With a region (e.g. "US"), a national number of that region is accepted too, and the
    11-digit NANP form `1NXXNXXXXXX` that carriers send without the `+`: what a carrier's
    Request-URI holds."""
    raw = value.strip()
    if region is None and not raw.startswith("+"):
        raise InvalidNumber("must be an E.164 number starting with + and the country code, e.g. +15551234567")
    if len(raw) > _MAX_LENGTH or not (_INTERNATIONAL if region is None else _ANY).fullmatch(raw):
        where = " after the +" if raw.startswith("+") else ""
        raise InvalidNumber(f"must contain only digits{where} (spaces, dots, dashes, brackets allowed)")
    parsed = _parse(raw, None if raw.startswith("+") else region)
    why = _possible(parsed)
    if why is not None and not raw.startswith("+"):
        digits = "".join(ch for ch in raw if ch.isdigit())
        if len(digits) == 11 and digits.startswith("1"):
            # A NANP number without its + (how US carriers commonly send them), whatever the
            # default region is; only tried when the national reading is not possible.
            nanp = _parse("+" + digits, None)
            if _possible(nanp) is None:
                parsed, why = nanp, None
    if why is not None:
        raise InvalidNumber(f"not a valid E.164 number: {why}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
