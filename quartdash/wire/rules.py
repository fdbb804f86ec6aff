"""The limits a connection enforces, as pure arithmetic: the clock is passed in.

Nothing here schedules, sleeps or reads a clock, so each rule is tested by
calling it with made-up times (tests/test_rules.py). The session decides
when to ask and what to do with the answer (close with which code).
"""

from __future__ import annotations

__all__ = ["ByteBudget", "Inactivity", "SendStall", "TokenBucket"]


class TokenBucket:
    """Flood control: ``rate`` tokens a second, at most ``burst`` saved up.

    Every inbound message spends one; a message the bucket cannot pay for is
    the flood (docs/reliability.md).
    """

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float, count: float = 1) -> bool:
        """Spend ``count`` tokens; False (nothing spent) when there are not enough."""
        self._refill(now)
        if self._tokens < count:
            return False
        self._tokens -= count
        return True

    def borrow(self, now: float, count: float) -> float:
        """Spend ``count`` tokens even if that leaves a debt; return the seconds
        until the debt is paid back (0 when there was enough): a throttle."""
        self._refill(now)
        self._tokens -= count
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now


class Inactivity:
    """Idle detection: ``timeout`` seconds without activity either way (0: never idle).

    Heartbeats and their acks are not activity: a client that only says it is
    alive is idle, which is what the inactivity timeout is for.
    """

    __slots__ = ("last", "timeout")

    def __init__(self, timeout: float, now: float) -> None:
        self.timeout = timeout
        self.last = now

    def touch(self, now: float) -> None:
        self.last = now

    def remaining(self, now: float) -> float | None:
        """Seconds until idle (<= 0: idle now); None when the rule is off."""
        if self.timeout <= 0:
            return None
        return self.last + self.timeout - now


class SendStall:
    """A send blocked on a client that stopped reading *and* went silent.

    A send blocks only under TCP back-pressure. The client counts as stuck
    when a send has been blocked for ``timeout`` seconds and nothing arrived
    from it meanwhile: a slow reader that still sends heartbeats is alive.
    """

    __slots__ = ("_heard", "_started", "timeout")

    def __init__(self, timeout: float, now: float) -> None:
        self.timeout = timeout
        self._started: float | None = None
        self._heard = now

    @property
    def sending(self) -> bool:
        return self._started is not None

    def send_started(self, now: float) -> None:
        self._started = now

    def send_finished(self) -> None:
        self._started = None

    def heard_from_client(self, now: float) -> None:
        self._heard = now

    def remaining(self, now: float) -> float | None:
        """Seconds until the send counts as stalled (<= 0: stalled); None when idle."""
        if self._started is None:
            return None
        return max(self._started, self._heard) + self.timeout - now


class ByteBudget:
    """Bytes a connection may hold at once of one kind (``limit``).

    :meth:`charge` is asked *before* the bytes are kept; :meth:`release`
    returns them when they are let go.
    """

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def fits(self, size: int) -> bool:
        return self.used + size <= self.limit

    def charge(self, size: int) -> bool:
        """Keep ``size`` more bytes; False (nothing charged) when over the limit."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used = max(0, self.used - size)
