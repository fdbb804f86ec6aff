"""quartdash.wire.rules: each limit as arithmetic over made-up times."""

from __future__ import annotations

import pytest

from quartdash.wire.rules import ByteBudget, Inactivity, SendStall, TokenBucket


def test_token_bucket_spends_its_burst_then_refills_at_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert all(bucket.take(0.0) for _ in range(20))
    assert not bucket.take(0.0)
    assert bucket.take(0.1)  # one token back after 1/rate s
    assert not bucket.take(0.1)
    assert bucket.take(10.0, count=20)  # refills up to the burst, no further
    assert not bucket.take(10.0)


def test_token_bucket_refuses_a_batch_it_cannot_pay_and_spends_nothing() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert not bucket.take(0.0, count=21)
    assert bucket.take(0.0, count=20)


def test_inactivity_counts_from_the_last_touch() -> None:
    idle = Inactivity(timeout=5.0, now=100.0)
    assert idle.remaining(101.0) == pytest.approx(4.0)
    idle.touch(103.0)
    assert idle.remaining(107.0) == pytest.approx(1.0)
    assert idle.remaining(108.5) == pytest.approx(-0.5)


def test_inactivity_off_when_the_timeout_is_zero() -> None:
    assert Inactivity(timeout=0, now=0.0).remaining(1e9) is None


def test_send_stall_needs_a_blocked_send_and_a_silent_client() -> None:
    stall = SendStall(timeout=60.0, now=0.0)
    assert stall.remaining(1000.0) is None  # nothing being sent
    stall.send_started(10.0)
    assert stall.remaining(20.0) == pytest.approx(50.0)
    stall.heard_from_client(50.0)  # a heartbeat: alive, only slow
    assert stall.remaining(69.0) == pytest.approx(41.0)
    assert stall.remaining(110.0) == pytest.approx(0.0)
    stall.send_finished()
    assert not stall.sending and stall.remaining(500.0) is None


def test_byte_budget_refuses_what_does_not_fit_and_charges_nothing() -> None:
    budget = ByteBudget(100)
    assert budget.charge(60)
    assert not budget.fits(41) and not budget.charge(41)
    assert budget.used == 60
    budget.release(60)
    assert budget.charge(100) and budget.used == 100
    budget.release(500)  # never below zero
    assert budget.used == 0
