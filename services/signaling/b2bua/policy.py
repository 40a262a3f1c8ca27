"""When to try the next target, and what final status the carrier gets (pure functions).

The rules are those of a B2BUA in front of customers' PBXs (and of Twilio's origination
URIs): transport failures, timeouts and server errors move on to the next candidate; an
answer from the callee (busy, decline) does not; once early media has flowed the call
stays where it is (no crank-back)."""

from __future__ import annotations

from enum import StrEnum

from proto.messages import AttemptRecord

# The one attempt type: the bus contract's (a cross-region leg sends its attempts as they are).
Attempt = AttemptRecord


class Result(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"  # 486, 600
    DECLINED = "declined"  # 603
    NO_ANSWER = "no-answer"  # ring timeout, 480, 408 after ringing
    UNREACHABLE = "unreachable"  # transport error, Timer B, 408 without ringing
    SERVER_ERROR = "server-error"  # 5xx
    AUTH_FAILED = "auth-failed"  # challenged again with the same credentials
    REJECTED = "rejected"  # other 4xx
    MEDIA_FAILED = "media-failed"  # answer without usable SDP
    CANCELED = "canceled"  # the carrier gave up
    REDIRECTED = "redirected"  # 3xx whose Contacts are tried next (PbxOptions.follow_redirects)


def attempt(target: str, result: Result, status: int | None = None, reason: str = "", *,
            early_media: bool = False, retry_after: int | None = None) -> Attempt:
    return Attempt(target=target, result=result, status=status, reason=reason, early_media=early_media,
                   retry_after=retry_after)


def classify(status: int, *, rang: bool = False) -> Result:
    """The result of one attempt from the client's final response (RFC 3261 §21)."""
    if 200 <= status < 300:
        return Result.ANSWERED
    if status in (486, 600):
        return Result.BUSY
    if status == 603:
        return Result.DECLINED
    if status == 480 or (status == 408 and rang):
        return Result.NO_ANSWER
    if status == 408:
        return Result.UNREACHABLE
    if status == 487:
        return Result.CANCELED
    if 500 <= status < 600:
        return Result.SERVER_ERROR
    return Result.REJECTED


# Results after which the next target (or region) is tried.
MOVE_ON = {Result.UNREACHABLE, Result.SERVER_ERROR, Result.NO_ANSWER, Result.REJECTED, Result.AUTH_FAILED,
           Result.MEDIA_FAILED, Result.REDIRECTED}


def should_move_on(attempt: Attempt) -> bool:
    if attempt.early_media:
        return False  # no crank-back once the caller has heard the callee's media
    return attempt.result in MOVE_ON


def carrier_status(attempts: list[Attempt]) -> tuple[int, str]:
    """The final response to the carrier after every attempt failed (the last decides,
    RFC 3261 §16.7 picks the 'best' — we prefer the answer a user would recognise)."""
    if not attempts:
        return 480, "No targets"
    results = {a.result for a in attempts}
    last = attempts[-1]
    if Result.BUSY in results:
        return 486, "Busy Here"
    if Result.DECLINED in results:
        return 603, "Decline"
    if last.result == Result.NO_ANSWER or Result.NO_ANSWER in results:
        return 480, "Temporarily Unavailable"
    if last.result == Result.AUTH_FAILED:
        return 403, "Forbidden (authentication with the SIP client failed)"
    if last.result == Result.MEDIA_FAILED:
        return 488, "Not Acceptable Here"
    if last.result == Result.SERVER_ERROR:
        return 503, "Service Unavailable"
    if last.result == Result.UNREACHABLE:
        return 502, "Bad Gateway"
    if last.result == Result.REJECTED and last.status:
        return (last.status if last.status in (403, 404, 410, 484, 488) else 480), last.reason or "Rejected"
    return 480, "Temporarily Unavailable"


def record_result(attempts: list[Attempt], answered: bool) -> str:
    """The call record's result: completed, busy, no-answer, failed or canceled."""
    if answered:
        return "completed"
    results = {a.result for a in attempts}
    if Result.CANCELED in results:
        return "canceled"
    if Result.BUSY in results or Result.DECLINED in results:
        return "busy"
    if Result.NO_ANSWER in results:
        return "no-answer"
    return "failed"
