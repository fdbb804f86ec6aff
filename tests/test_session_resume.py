"""Resume at the session core: a new transport for a detached session, with
the fake app and fake socket of tests/test_session.py (the real servers,
proxies and browsers are in tests/test_resume*.py).

These pin down orderings a real server produces only under load, when one
event-loop iteration sees the old socket's end and the new socket's
``resume`` together.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from quartdash.config import WebSocketConfig
from quartdash.session import Session, State
from tests.test_session import FakeApp, FakeTransport, until


class DyingTransport(FakeTransport):
    """A socket that died: every send blocks, and a cancelled send takes
    0.1 s to give up (as one stuck in a real server's write may)."""

    async def send(self, text: str) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0.1)
            raise


def resumable_app(resume_timeout: float) -> FakeApp:
    return FakeApp(config=replace(WebSocketConfig(), resume_timeout=resume_timeout,
                                  shutdown_grace=0.2))


async def open_resumable(app: FakeApp, transport: FakeTransport
                         ) -> tuple[Session, asyncio.Task[None]]:
    session = Session(app, {"headers": {}})
    task = asyncio.create_task(session.serve(transport))
    transport.feed({"type": "hello", "payload": {"resume": 1}},
                   {"type": "renderer_joined", "rendererId": "r1"})
    await until(lambda: session.token is not None and bool(session.renderers))
    return session, task


async def test_a_resume_in_the_same_moment_as_the_old_sockets_end_keeps_the_session() -> None:
    """The resume comes while the old socket's detach still waits for its
    stuck send to end: it must find the session fully detached, and no
    expiry armed for the old socket may close it later."""
    app = resumable_app(resume_timeout=0.3)
    old = DyingTransport()
    session, serving = await open_resumable(app, old)
    await until(lambda: session.sender._task is not None)  # stuck sending `session`

    old.inbound.put_nowait(None)  # the client is gone...
    await until(lambda: session.state is State.DETACHED, timeout=1)
    new = FakeTransport()
    resuming = asyncio.create_task(session.resume(new, session.sender.seq))  # ...and back
    await asyncio.sleep(0.6)  # twice the resume window

    assert session.state is State.OPEN, session.state
    assert new.closed_with is None
    assert not resuming.done()  # still serving the new socket
    new.feed({"type": "heartbeat"})
    await new.wait_for(lambda m: m["type"] == "heartbeat_ack")
    resuming.cancel()
    serving.cancel()
    await asyncio.gather(resuming, serving, return_exceptions=True)


async def test_a_session_left_by_its_socket_still_expires() -> None:
    """The other side of the same rule: with no resume, the window closes it."""
    app = resumable_app(resume_timeout=0.2)
    old = DyingTransport()
    session, serving = await open_resumable(app, old)
    old.inbound.put_nowait(None)
    await until(lambda: session.state is State.DETACHED, timeout=2)
    await until(lambda: session.state is State.CLOSED, timeout=3)
    assert app.closed == [session]
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)


async def test_a_takeover_finishes_when_the_server_cancels_the_old_handler_again() -> None:
    """A resume while the old socket looks alive takes the session over; the
    server, noticing the old socket's end meanwhile, cancels its handler once
    more. The detach still completes: the resume goes on at once and the old
    socket is closed with 4011."""
    app = resumable_app(resume_timeout=30)
    old = DyingTransport()
    session, serving = await open_resumable(app, old)
    await until(lambda: session.sender._task is not None)
    new = FakeTransport()
    resuming = asyncio.create_task(session.resume(new, session.sender.seq))
    await asyncio.sleep(0.03)  # the takeover's detach waits for the stuck send to end
    serving.cancel()

    await new.wait_for(lambda m: m["type"] == "resumed", timeout=0.5)
    await until(lambda: old.closed_with is not None, timeout=1)
    assert old.closed_with is not None and old.closed_with[0] == 4011
    assert session.state is State.OPEN and session._expiry is None
    resuming.cancel()
    await asyncio.gather(resuming, serving, return_exceptions=True)


class SwallowingTransport(FakeTransport):
    """A send that swallows the cancel it gets (as a library on the send path
    may), then returns as if it had sent."""

    async def send(self, text: str) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.sent.append({"swallowed": text})


async def test_a_paused_senders_task_that_missed_its_cancel_sends_nothing_more() -> None:
    """The sender was paused (its session detached) while its task was stuck
    in a send that swallowed the cancel: that task lives on, but what is
    queued afterwards goes to the next transport, not to the dead one."""
    from quartdash.session.sender import Sender

    loop = asyncio.get_running_loop()
    sender = Sender(WebSocketConfig(), loop, lambda reason: None)
    old, new = SwallowingTransport(), FakeTransport()
    sender.start(old)
    sender.outbox.push(b'{"n":1}')
    await until(lambda: sender._task is not None)
    await asyncio.sleep(0.01)  # stuck in old.send
    stuck = sender.pause()
    sender.outbox.push(b'{"n":2}')  # queued while detached
    await asyncio.sleep(0.01)  # the stuck task swallows its cancel and carries on
    sender.start(new)
    await new.wait_for(lambda m: m.get("n") == 2)
    await asyncio.sleep(0.01)
    assert old.sent == [{"swallowed": '{"n":1}'}] and new.sent == [{"n": 2}]
    assert stuck is not None and stuck.done()
    await sender.stop()
