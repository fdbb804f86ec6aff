"""static/quartdash-ws-worker.js (and static/quartdash-page.js) in real headless
Chromium against a fake server.

Pages of ``tests/js/fake_server.py`` play the renderer (same messages as
dash-renderer's WorkerClient); the fake server records what reaches the
socket. Every test gets its own tag (its own log, socket and worker URL) and
its own browser context (its own SharedWorker). The worker's own console is
read over CDP, so a test also fails on a worker exception or console error.

Pages load the page helper (quartdash-page.js) as quartdash's pages do,
unless a test asks for Dash's plain page (``helper=False``). The main browser
is a default Chromium: Chromium 156 does not fire the MessagePort ``close``
event by default, so the helper's ``pagehide`` message and Web Lock are what
tell the worker that a tab is gone. ``test_port_close_event`` covers the
worker's ``close`` listener in a browser launched with the event enabled.

A renderer joins (``renderer_joined``) on its first message to the server,
not on ``connect``; ``renderer_left`` only follows a join.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("QUARTDASH_CHROMIUM", "/usr/bin/chromium")
BASE_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CLOSE_EVENT_ARG = "--enable-blink-features=MessagePortCloseEvent"
# What the worker says about the connection itself, not for a tab (resume).
CONNECTION_MESSAGES = frozenset({"hello", "resume", "ack"})

if not os.path.exists(CHROMIUM):
    # scripts/test.sh installs Debian's chromium: missing means a broken set-up.
    raise RuntimeError(f"{CHROMIUM} is not installed: run bash scripts/test.sh")


# ---- fixtures -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hypercorn",
            "tests.js.fake_server:app",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                http_get(f"{base}/log?tag=ready")
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("fake server did not start") from None
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


# Named apart from tests/conftest.py's async `playwright` / `browser` fixtures:
# these tests are plain sync functions driving the sync API on its own loop.
@pytest.fixture(scope="module")
def sync_pw() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def chromium(sync_pw: Any) -> Iterator[Any]:
    """A default Chromium, as users have it."""
    browser = sync_pw.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS, timeout=15000)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def chromium_close_event(sync_pw: Any) -> Iterator[Any]:
    """A Chromium that fires the MessagePort close event (off by default)."""
    browser = sync_pw.chromium.launch(
        executable_path=CHROMIUM, args=[*BASE_ARGS, CLOSE_EVENT_ARG], timeout=15000
    )
    yield browser
    browser.close()


class WorkerConsole:
    """The SharedWorker's console, read over a browser-level CDP session."""

    def __init__(self, browser: Any) -> None:
        self.cdp = browser.new_browser_cdp_session()
        self.sessions: dict[str, list[dict[str, Any]]] = {}
        self.cdp.on("Target.receivedMessageFromTarget", self._on_message)

    def _on_message(self, event: dict[str, Any]) -> None:
        entries = self.sessions.get(event["sessionId"])
        message = json.loads(event["message"])
        if entries is None or "method" not in message:
            return
        params = message["params"]
        if message["method"] == "Runtime.consoleAPICalled":
            text = " ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"])
            entries.append({"level": params["type"], "text": text})
        elif message["method"] == "Runtime.exceptionThrown":
            entries.append({"level": "exception", "text": json.dumps(params["exceptionDetails"])})
        elif message["method"] == "Log.entryAdded":
            entries.append({"level": params["entry"]["level"], "text": params["entry"]["text"]})

    def targets(self, kind: str, url_part: str) -> list[dict[str, Any]]:
        return [
            t
            for t in self.cdp.send("Target.getTargets")["targetInfos"]
            if t["type"] == kind and url_part in t["url"]
        ]

    def attach(self, url_part: str) -> list[dict[str, Any]]:
        """Start recording the console of the worker whose URL contains url_part."""
        deadline = time.monotonic() + 5
        while not (found := self.targets("shared_worker", url_part)):
            assert time.monotonic() < deadline, f"no shared worker for {url_part}"
            time.sleep(0.05)
        session = self.cdp.send(
            "Target.attachToTarget", {"targetId": found[0]["targetId"], "flatten": False}
        )["sessionId"]
        entries: list[dict[str, Any]] = []
        self.sessions[session] = entries
        for number, method in enumerate(("Runtime.enable", "Log.enable"), 1):
            self.cdp.send(
                "Target.sendMessageToTarget",
                {"sessionId": session, "message": json.dumps({"id": number, "method": method})},
            )
        return entries

    def crash(self, url_part: str) -> None:
        """Crash the renderer process of the page whose URL contains url_part.

        Sent through the browser session: a page's own CDP session would wait
        for an answer that a crashed page never gives."""
        (target,) = self.targets("page", url_part)
        session = self.cdp.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": False}
        )["sessionId"]
        self.cdp.send(
            "Target.sendMessageToTarget",
            {"sessionId": session, "message": json.dumps({"id": 1, "method": "Page.crash"})},
        )

    def pump(self) -> None:
        """Deliver queued CDP events (the sync API only does so inside a call)."""
        self.cdp.send("Target.getTargets")


@pytest.fixture(scope="module")
def worker_console(chromium: Any) -> WorkerConsole:
    return WorkerConsole(chromium)


class Harness:
    """One test's browser context, tag and views of the fake server's log."""

    def __init__(self, server: str, browser: Any, console: WorkerConsole) -> None:
        self.server = server
        self.tag = uuid.uuid4().hex[:12]
        self.context = browser.new_context()
        self.console = console
        self.worker_log: list[dict[str, Any]] = []
        self.page_errors: list[str] = []

    def open(self, rid: str, worker: str = "", helper: bool = True, **params: str) -> Any:
        """A page playing renderer `rid`; `worker` is the worker's query string.

        With `helper` the page loads quartdash-page.js first, like quartdash's
        pages; without it, it is Dash's plain page."""
        query = {"rid": rid, "tag": self.tag, "w": f"t={self.tag}&{worker}", **params}
        if helper:
            query["helper"] = "1"
        page = self.context.new_page()
        page.on("console", lambda m: m.type == "error" and self.page_errors.append(m.text))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.goto(f"{self.server}/page?{urllib.parse.urlencode(query)}")
        if not self.worker_log:
            self.worker_log = self.console.attach(f"t={self.tag}")
        return page

    def contact(self, page: Any, rid: str, request_id: str = "first") -> None:
        """The renderer's first message, as when its layout has rendered:
        a callback_request without inputs (a persistent callback starting)."""
        page.evaluate(
            "([rid, id]) => post({type: 'callback_request', rendererId: rid, requestId: id,"
            " payload: {output: 'clock.children', inputs: []}})",
            [rid, request_id],
        )
        self.wait(
            lambda: any(m["requestId"] == request_id for m in self.recv("callback_request")),
            3,
            f"{rid}'s first message",
        )

    def crash(self, rid: str) -> None:
        self.console.crash(f"rid={rid}&")

    # -- the fake server --

    def log(self) -> list[dict[str, Any]]:
        return http_get(f"{self.server}/log?tag={self.tag}")

    def recv(self, type_: str | None = None, conn: int | None = None) -> list[dict[str, Any]]:
        """Messages the server received, optionally of one type / on one connection.

        Without ``type_`` the connection's own messages (``hello``: this fake
        server never answers it with a session, so nothing is resumable) are
        left out: these tests are about what the tabs send.
        """
        return [
            {**e["msg"], "_conn": e["conn"], "_t": e["t"]}
            for e in self.log()
            if e["event"] == "recv"
            and (e["msg"].get("type") == type_ if type_ is not None
                 else e["msg"].get("type") not in CONNECTION_MESSAGES)
            and (conn is None or e["conn"] == conn)
        ]

    def joined(self) -> list[str]:
        return [m["rendererId"] for m in self.recv("renderer_joined")]

    def left(self) -> list[str]:
        return [m["rendererId"] for m in self.recv("renderer_left")]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.log() if e["event"] == name]

    def second_connection(self, count: int, timeout: float = 3.0) -> list[dict[str, Any]]:
        """Wait for a second connection and its first `count` messages; return them."""

        def probe() -> list[dict[str, Any]] | None:
            opened = self.events("open")
            if len(opened) < 2:
                return None
            got = [m for m in self.recv(conn=opened[1]["conn"]) if m["type"] != "heartbeat"]
            return got[:count] if len(got) >= count else None

        return self.wait(probe, timeout, f"{count} messages on a second connection")

    def push(self, frame: Any = None, close: int | None = None, reason: str = "") -> None:
        params: dict[str, Any] = {"tag": self.tag}
        if close is not None:
            params.update(close=close, reason=reason)
        else:
            params["frame"] = frame if isinstance(frame, str) else json.dumps(frame)
        http_get(f"{self.server}/push?{urllib.parse.urlencode(params)}")

    def control(self, **params: Any) -> None:
        http_get(f"{self.server}/control?{urllib.parse.urlencode({'tag': self.tag, **params})}")

    # -- waiting --

    def wait(self, probe: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll until probe() is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
            time.sleep(0.03)

    def wait_received(self, page: Any, count: int, timeout: float = 3.0) -> list[dict[str, Any]]:
        """Wait until the page holds `count` messages from the worker; return them all."""
        return self.wait(
            lambda: (got := page.evaluate("window.received")) and len(got) >= count and got,
            timeout,
            f"{count} messages on page",
        )

    def close(self) -> None:
        self.context.close()
        self.console.pump()

    def check_console(self) -> None:
        assert self.page_errors == []
        bad = [e for e in self.worker_log if e["level"] in ("error", "exception", "warning")]
        assert bad == [], f"worker console: {bad}"


def make_harness(server: str, browser: Any, console: WorkerConsole) -> Iterator[Harness]:
    harness = Harness(server, browser, console)
    try:
        yield harness
    finally:
        harness.close()
    harness.check_console()


@pytest.fixture
def h(server: str, chromium: Any, worker_console: WorkerConsole) -> Iterator[Harness]:
    yield from make_harness(server, chromium, worker_console)


@pytest.fixture
def h_close_event(server: str, chromium_close_event: Any) -> Iterator[Harness]:
    yield from make_harness(server, chromium_close_event, WorkerConsole(chromium_close_event))


def locks(page: Any) -> dict[str, list[str]]:
    """The origin's quartdash Web Locks: held (by pages) and pending (the worker's waits)."""
    return page.evaluate(
        """async () => {
            const state = await navigator.locks.query();
            const names = (list) => list.map((l) => l.name)
                .filter((n) => n.startsWith("quartdash-renderer:")).sort();
            return {held: names(state.held), pending: names(state.pending)};
        }"""
    )


def types(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages]


def set_props(rid: str) -> dict[str, Any]:
    return {"type": "set_props", "rendererId": rid, "payload": {"componentId": "x", "props": {}}}


def assert_no_close_event(page: Any) -> None:
    # The tests in the default browser rely on it: only the helper can tell.
    assert not page.evaluate("'onclose' in MessagePort.prototype"), (
        "this Chromium fires MessagePort close events by default; "
        "the tab-close tests no longer isolate the page helper"
    )


# ---- joining -------------------------------------------------------------


def test_join_is_sent_right_before_the_first_message_not_on_connect(h: Harness) -> None:
    page = h.open("A")
    assert h.wait_received(page, 1) == [{"type": "connected", "rendererId": "A"}]
    assert len(h.events("open")) == 1
    # Connected, layout not rendered yet: the server must not start A's
    # persistent callbacks, whose pushes would find no components.
    time.sleep(0.3)
    assert h.recv() == []

    page.evaluate(
        "post({type: 'get_props_response', rendererId: 'A', requestId: 'g1', payload: {value: 3}})"
    )
    h.wait(lambda: h.recv("get_props_response"), 3, "get_props_response")
    page.evaluate(
        "post({type: 'callback_request', rendererId: 'A', requestId: 'r1', payload: {inputs: [1]}})"
    )
    got = h.wait(lambda: len(h.recv()) >= 3 and h.recv(), 3, "callback_request")
    assert [(m["type"], m["rendererId"], m.get("requestId")) for m in got] == [
        ("renderer_joined", "A", None),
        ("get_props_response", "A", "g1"),
        ("callback_request", "A", "r1"),
    ]
    # Renderer -> server messages carry their rendererId, requestId and payload.
    assert got[1]["payload"] == {"value": 3}
    assert got[2]["payload"] == {"inputs": [1]}
    assert len({m["_conn"] for m in got}) == 1


def test_a_queued_first_message_follows_one_join(h: Harness) -> None:
    page = h.open("A", early="1")
    assert h.wait_received(page, 1) == [{"type": "connected", "rendererId": "A"}]
    got = h.wait(lambda: len(h.recv()) >= 2 and h.recv(), 3, "joined + early request")
    # The callback_request was posted before the socket could be open: it was
    # queued, and flushed right after the (single) renderer_joined.
    assert [(m["type"], m["rendererId"]) for m in got] == [
        ("renderer_joined", "A"),
        ("callback_request", "A"),
    ]
    assert got[1]["requestId"] == "early"
    assert got[1]["payload"] == {"output": "o.children"}
    assert len(h.events("open")) == 1

    page.evaluate(
        "post({type: 'get_props_response', rendererId: 'A', requestId: 'g1', payload: {value: 3}})"
    )
    h.wait(lambda: h.recv("get_props_response"), 3, "get_props_response")
    assert types(h.recv()) == ["renderer_joined", "callback_request", "get_props_response"]

    # Server -> renderer single frames are forwarded as they are.
    response = {
        "type": "callback_response",
        "rendererId": "A",
        "requestId": "early",
        "payload": {"status": "ok", "data": {"multi": True, "response": {}}},
    }
    h.push(response)
    h.push(set_props("A"))
    h.push({"type": "heartbeat_ack"})
    h.push(set_props("nobody"))  # dropped quietly
    assert h.wait_received(page, 3)[1:] == [response, set_props("A")]


def test_two_tabs_share_one_socket_and_each_joins_on_its_first_message(h: Harness) -> None:
    a = h.open("A")
    b = h.open("B")
    h.wait_received(a, 1)
    assert h.wait_received(b, 1) == [{"type": "connected", "rendererId": "B"}]
    time.sleep(0.2)
    assert h.joined() == []
    # B speaks first, so it joins first, whatever the order of the connects.
    h.contact(b, "B")
    assert h.joined() == ["B"]
    h.contact(a, "A", "a-first")
    got = h.recv()
    assert [(m["type"], m["rendererId"]) for m in got] == [
        ("renderer_joined", "B"),
        ("callback_request", "B"),
        ("renderer_joined", "A"),
        ("callback_request", "A"),
    ]
    assert len(h.events("open")) == 1
    assert len({m["_conn"] for m in got}) == 1


# ---- tabs leaving --------------------------------------------------------


def test_closing_a_tab_sends_renderer_left_for_it_only(h: Harness) -> None:
    """Default Chromium, quartdash's page: the helper's pagehide message."""
    a = h.open("A")
    assert_no_close_event(a)
    b = h.open("B")
    c = h.open("C")  # never talks to the server
    h.contact(a, "A", "a1")
    h.contact(b, "B", "b1")
    h.wait_received(c, 1)

    closed_at = time.monotonic()
    a.close()
    left = h.wait(lambda: h.recv("renderer_left"), 2, "renderer_left within 2 s")
    print(f"renderer_left {left[0]['_t'] - closed_at:.3f}s after page.close()")
    assert [m["rendererId"] for m in left] == ["A"]
    c.close()  # never joined, so it never leaves

    # The socket stays open and keeps serving the other tab.
    time.sleep(0.3)
    assert h.left() == ["A"]
    assert h.events("close") == [] and len(h.events("open")) == 1
    h.push(set_props("B"))
    assert types(h.wait_received(b, 2)) == ["connected", "set_props"]


def test_pagehide_alone_tells_a_closed_tab(h: Harness) -> None:
    """No Web Locks for the page (as outside a secure context): the helper
    sends `connect` at once, and its pagehide message alone tells the worker."""
    a = h.open("A", nolocks="1", early="1")
    assert_no_close_event(a)
    b = h.open("B")
    assert h.wait_received(a, 1) == [{"type": "connected", "rendererId": "A"}]
    h.wait(lambda: h.recv("callback_request"), 3, "A's early request")
    h.contact(b, "B", "b1")
    assert locks(b) == {"held": ["quartdash-renderer:B"], "pending": ["quartdash-renderer:B"]}
    a.close()
    h.wait(lambda: h.left() == ["A"], 2, "renderer_left A within 2 s")
    assert h.events("close") == [] and len(h.events("open")) == 1


def test_the_web_lock_alone_tells_a_closed_tab(h: Harness) -> None:
    """The helper's pagehide message suppressed: only its lock is left."""
    a = h.open("A", nopagehide="1")
    assert_no_close_event(a)
    # A connected before the socket was open, B once it was.
    h.wait_received(a, 1)
    b = h.open("B", nopagehide="1")
    c = h.open("C")
    h.wait_received(b, 1)
    h.wait_received(c, 1)
    # Each page holds its lock, and the worker waits on each.
    names = ["quartdash-renderer:A", "quartdash-renderer:B", "quartdash-renderer:C"]
    assert locks(c) == {"held": names, "pending": names}
    for page, rid in ((a, "A"), (b, "B"), (c, "C")):
        h.contact(page, rid, rid)

    a.close()
    h.wait(lambda: h.left() == ["A"], 2, "renderer_left A within 2 s")
    b.close()
    h.wait(lambda: h.left() == ["A", "B"], 2, "renderer_left B within 2 s")
    assert locks(c) == {"held": names[2:], "pending": names[2:]}
    assert h.events("close") == [] and len(h.events("open")) == 1
    h.push(set_props("C"))
    assert types(h.wait_received(c, 2)) == ["connected", "set_props"]


def test_a_crashed_tab_is_gone_too(h: Harness) -> None:
    """A renderer crash: no pagehide, no disconnect; the lock is released."""
    a = h.open("A")
    assert_no_close_event(a)
    h.wait_received(a, 1)
    b = h.open("B")
    h.wait_received(b, 1)
    h.contact(a, "A", "a1")
    h.contact(b, "B", "b1")
    # B, not A: the worker was started from A's page and shares its process,
    # so crashing A would take the worker (and the socket) down with it.
    crashed_at = time.monotonic()
    h.crash("B")
    left = h.wait(lambda: h.recv("renderer_left"), 2, "renderer_left within 2 s")
    print(f"renderer_left {left[0]['_t'] - crashed_at:.3f}s after the crash")
    assert [m["rendererId"] for m in left] == ["B"]
    assert h.console.targets("shared_worker", f"t={h.tag}"), "the worker died with B"
    assert h.events("close") == [] and len(h.events("open")) == 1
    h.push(set_props("A"))
    assert types(h.wait_received(a, 2)) == ["connected", "set_props"]


def test_dash_plain_page_is_not_taken_for_gone(h: Harness) -> None:
    """Without the helper there is no lock: the worker must not wait on one
    (it would be granted at once). Nor can it see such a tab close."""
    a = h.open("A", helper=False)
    assert_no_close_event(a)
    b = h.open("B", helper=False)
    h.contact(a, "A", "a1")
    h.contact(b, "B", "b1")
    assert locks(a) == {"held": [], "pending": []}
    time.sleep(0.5)
    assert h.left() == []
    h.push(set_props("A"))
    assert types(h.wait_received(a, 2)) == ["connected", "set_props"]

    a.close()
    time.sleep(0.5)
    # Without the helper or the close event the worker cannot tell A is gone.
    assert h.left() == []
    h.push(set_props("B"))
    assert types(h.wait_received(b, 2)) == ["connected", "set_props"]
    b.evaluate("post({type: 'disconnect', rendererId: 'B'})")
    h.wait(lambda: h.left() == ["B"], 3, "renderer_left B")
    # The worker still counts A, so the socket stays open until the
    # browser ends the worker with its last document.
    time.sleep(0.3)
    assert h.events("close") == []
    b.close()
    closes = h.wait(lambda: h.events("close"), 3, "socket ended with the worker")
    # Chromium closes a terminated worker's sockets with 1001 (going away).
    print(f"plain page, last tab closed: close code {closes[0]['code']}")
    assert h.left() == ["B"]


def test_port_close_event(h_close_event: Harness) -> None:
    """Where the MessagePort close event is on, it alone tells a closed tab
    (Dash's plain page: no helper)."""
    h = h_close_event
    a = h.open("A", helper=False)
    assert a.evaluate("'onclose' in MessagePort.prototype")
    b = h.open("B", helper=False)
    c = h.open("C", helper=False)  # never talks to the server
    h.contact(a, "A", "a1")
    h.contact(b, "B", "b1")
    h.wait_received(c, 1)
    c.close()
    a.close()
    h.wait(lambda: h.left() == ["A"], 2, "renderer_left A within 2 s")
    time.sleep(0.3)
    assert h.left() == ["A"]
    assert h.events("close") == [] and len(h.events("open")) == 1
    h.push(set_props("B"))
    assert types(h.wait_received(b, 2)) == ["connected", "set_props"]


def test_closing_the_last_tab_ends_the_socket(h: Harness) -> None:
    a = h.open("A")
    h.wait_received(a, 1)
    h.contact(a, "A")
    a.close()
    closes = h.wait(lambda: h.events("close"), 3, "socket closed")
    left = h.left()
    print(f"last tab closed: renderer_left {left}, close code {closes[0]['code']}")
    # Usually the helper's pagehide message comes first: renderer_left, then
    # 1000. But Chromium ends a SharedWorker as soon as its last document is
    # gone; when that wins the race the browser closes the socket itself,
    # with 1001 (going away) or 1006. Either way the server learns that the
    # connection, and so every renderer on it, ended.
    assert left in ([], ["A"])
    assert closes[0]["code"] in (1000, 1001, 1006)
    if closes[0]["code"] == 1000:
        assert left == ["A"]


def test_disconnect_of_the_last_renderer_closes_with_1000(h: Harness) -> None:
    a = h.open("A")
    h.wait_received(a, 1)
    h.contact(a, "A")
    # What dash-renderer does when its app unmounts: disconnect, then close the port.
    a.evaluate("post({type: 'disconnect', rendererId: 'A'})")
    closes = h.wait(lambda: h.events("close"), 3, "socket closed")
    assert closes[0]["code"] == 1000
    assert h.left() == ["A"]


def test_disconnect_before_any_message_sends_no_renderer_left(h: Harness) -> None:
    a = h.open("A")
    b = h.open("B")
    h.wait_received(a, 1)
    h.wait_received(b, 1)
    h.contact(b, "B")
    a.evaluate("post({type: 'disconnect', rendererId: 'A'})")
    b.evaluate("post({type: 'disconnect', rendererId: 'B'})")
    closes = h.wait(lambda: h.events("close"), 3, "socket closed")
    assert closes[0]["code"] == 1000
    assert types(h.recv()) == ["renderer_joined", "callback_request", "renderer_left"]
    assert h.left() == ["B"]


# ---- server -> renderers ---------------------------------------------------


def test_batch_is_split_per_renderer_in_order(h: Harness) -> None:
    a = h.open("A")
    b = h.open("B")
    h.wait_received(a, 1)
    h.wait_received(b, 1)

    def sp(rid: str, value: int) -> dict[str, Any]:
        return {
            "type": "set_props",
            "rendererId": rid,
            "payload": {"componentId": "x", "props": {"v": value}},
        }

    response = {
        "type": "callback_response",
        "rendererId": "A",
        "requestId": "r1",
        "payload": {"status": "prevent_update"},
    }
    get_props = {
        "type": "get_props_request",
        "rendererId": "B",
        "requestId": "g1",
        "payload": {"componentId": "x", "properties": ["v"]},
    }
    error = {
        "type": "error",
        "rendererId": "A",
        "requestId": "r2",
        "payload": {"message": "nope", "code": "unknown_callback"},
    }
    h.push(
        [
            sp("A", 1),
            sp("B", 10),
            sp("A", 2),
            response,  # A's pending set_props go out first
            {"type": "heartbeat_ack"},
            sp("A", 3),
            get_props,
            sp("nobody", 0),
            error,
            sp("B", 11),
        ]
    )

    def batch(rid: str, *values: int) -> dict[str, Any]:
        return {
            "type": "set_props_batch",
            "rendererId": rid,
            "payload": [{"componentId": "x", "props": {"v": v}} for v in values],
        }

    assert h.wait_received(a, 5)[1:] == [batch("A", 1, 2), response, batch("A", 3), error]
    assert h.wait_received(b, 4)[1:] == [batch("B", 10), get_props, batch("B", 11)]
    time.sleep(0.1)
    assert len(a.evaluate("window.received")) == 5
    assert len(b.evaluate("window.received")) == 4


# ---- heartbeat, inactivity, reconnect ---------------------------------------


def test_heartbeat_interval_comes_from_the_worker_url(h: Harness) -> None:
    # The page (like dash-renderer on first connect) passes no heartbeatInterval.
    page = h.open("A", worker="heartbeat=300")
    beats = h.wait(lambda: len(h.recv("heartbeat")) >= 4 and h.recv("heartbeat"), 3, "4 heartbeats")
    opened = h.events("open")[0]["t"]
    first = beats[0]["_t"] - opened
    spacing = (beats[3]["_t"] - beats[0]["_t"]) / 3
    assert 0.2 < first < 0.6, first
    assert 0.2 < spacing < 0.45, spacing
    # Acks are consumed by the worker, never forwarded.
    assert types(page.evaluate("window.received")) == ["connected"]


def test_unanswered_heartbeat_closes_with_4000_and_reconnects(h: Harness) -> None:
    h.control(ack="0")
    page = h.open("A", worker="heartbeat=200&heartbeat_timeout=300")
    h.contact(page, "A")
    closes = h.wait(lambda: h.events("close"), 3, "heartbeat timeout close")
    assert closes[0]["code"] == 4000
    opened = h.events("open")[0]["t"]
    assert 0.4 < closes[0]["t"] - opened < 1.0
    h.control(ack="1")
    # Back-off: the first retry comes 1-2 s later, and rejoins.
    reopen = h.wait(lambda: len(h.events("open")) >= 2 and h.events("open"), 2.5, "reconnect")
    assert 1.0 <= reopen[1]["t"] - closes[0]["t"] < 2.5
    joined = h.wait(
        lambda: len(h.recv("renderer_joined")) >= 2 and h.recv("renderer_joined"), 2, "rejoin"
    )
    assert joined[1]["_conn"] == reopen[1]["conn"] != joined[0]["_conn"]
    assert joined[1]["rendererId"] == "A"
    got = h.wait_received(page, 3)
    assert got[1] == {
        "type": "disconnected",
        "rendererId": "",
        "payload": {"reason": "Heartbeat timeout"},
    }
    assert got[2] == {"type": "connected", "rendererId": "A"}


@pytest.mark.parametrize("source", ["worker_url", "connect_payload"])
def test_inactivity_closes_with_4001_and_a_renderer_message_reconnects(
    h: Harness, source: str
) -> None:
    if source == "worker_url":
        page = h.open("A", worker="heartbeat=1000&inactivity=1500")
    else:  # a number in the renderer's connect payload overrides the URL
        page = h.open("A", worker="heartbeat=1000&inactivity=60000", inactivity="1500")
    closes = h.wait(lambda: h.events("close"), 3, "inactivity close")
    idle = closes[0]["t"] - h.events("open")[0]["t"]
    assert closes[0]["code"] == 4001
    # Checked by its own timer, not on heartbeat ticks (that would be 2 s),
    # and the heartbeat at 1 s is not activity (that would be 2.5 s).
    assert 1.4 < idle < 1.9, idle
    assert types(h.recv()) == ["heartbeat"]  # never contacted: never joined
    got = h.wait_received(page, 2)
    assert got[1]["payload"] == {"reason": "Inactivity timeout"}

    time.sleep(1.2)  # no automatic reconnect
    assert len(h.events("open")) == 1

    page.evaluate("post({type: 'callback_request', rendererId: 'A', requestId: 'r1', payload: {}})")
    assert [(m["type"], m["rendererId"]) for m in h.second_connection(2)] == [
        ("renderer_joined", "A"),
        ("callback_request", "A"),
    ]
    assert types(h.wait_received(page, 3)) == ["connected", "disconnected", "connected"]
    time.sleep(0.1)
    assert h.joined() == ["A"]  # once: not queued as well as sent on open


def test_server_close_1001_reconnects_and_rejoins_contacted_renderers(h: Harness) -> None:
    a = h.open("A")
    b = h.open("B")
    c = h.open("C")  # connected, never talked to the server
    h.contact(a, "A", "a1")
    h.contact(b, "B", "b1")
    h.wait_received(c, 1)
    h.push(close=1001, reason="Server shutting down")
    second = h.second_connection(2, timeout=4)
    # Only the renderers the server knew are announced again, before anything else.
    assert [(m["type"], m["rendererId"]) for m in second] == [
        ("renderer_joined", "A"),
        ("renderer_joined", "B"),
    ]
    conn2 = second[0]["_conn"]
    time.sleep(0.2)
    assert [m["rendererId"] for m in h.recv("renderer_joined", conn=conn2)] == ["A", "B"]
    assert len(h.events("open")) == 2
    for page, rid in ((a, "A"), (b, "B"), (c, "C")):
        assert h.wait_received(page, 3) == [
            {"type": "connected", "rendererId": rid},
            {
                "type": "disconnected",
                "rendererId": "",
                "payload": {"reason": "Server shutting down"},
            },
            {"type": "connected", "rendererId": rid},
        ]
    # C joins on its first message, on the new connection.
    h.contact(c, "C", "c1")
    assert [(m["type"], m["rendererId"]) for m in h.recv(conn=conn2)][-2:] == [
        ("renderer_joined", "C"),
        ("callback_request", "C"),
    ]


def test_server_close_4001_does_not_reconnect(h: Harness) -> None:
    page = h.open("A")
    h.wait_received(page, 1)
    h.contact(page, "A")
    h.push(close=4001, reason="Origin not allowed")
    got = h.wait_received(page, 2)
    assert got[1]["payload"] == {"reason": "Origin not allowed"}
    time.sleep(2.2)  # longer than the largest first back-off delay
    assert len(h.events("open")) == 1
    # A new user action reconnects.
    page.evaluate("post({type: 'callback_request', rendererId: 'A', requestId: 'r1', payload: {}})")
    assert [(m["type"], m["rendererId"]) for m in h.second_connection(2)] == [
        ("renderer_joined", "A"),
        ("callback_request", "A"),
    ]


def test_server_close_4003_revokes_until_a_page_loads(h: Harness) -> None:
    page = h.open("A")
    h.wait_received(page, 1)
    h.contact(page, "A")
    h.push(close=4003, reason="Signed out")
    got = h.wait_received(page, 3)
    assert got[1:3] == [
        {"type": "disconnected", "rendererId": "", "payload": {"reason": "Signed out"}},
        {"type": "quartdash_event", "name": "revoked", "payload": {"reason": "Signed out"}},
    ]
    # The page helper marks the page, for the app to react (a login link).
    assert page.evaluate("document.documentElement.dataset.quartdashRevoked") == "Signed out"
    time.sleep(2.2)  # longer than the largest first back-off delay
    assert len(h.events("open")) == 1
    # Unlike 4001, what the tab does next does not reconnect with the old
    # credentials: a callback with inputs fails at once, the rest is dropped.
    page.evaluate("post({type: 'callback_request', rendererId: 'A', requestId: 'r1',"
                  " payload: {inputs: [1]}})")
    page.evaluate("post({type: 'callback_request', rendererId: 'A', requestId: 'r2',"
                  " payload: {inputs: []}})")
    page.evaluate("post({type: 'tab_visible', rendererId: 'A'})")
    got = h.wait_received(page, 4)
    assert got[3] == {"type": "callback_response", "rendererId": "A", "requestId": "r1",
                      "payload": {"status": "error", "message": "revoked: Signed out"}}
    time.sleep(0.5)
    assert len(h.events("open")) == 1 and len(page.evaluate("window.received")) == 4
    # A page that loads (after a new login, say) connects again.
    b = h.open("B")
    h.wait(lambda: len(h.events("open")) == 2, 3, "a second connection")
    h.wait_received(b, 1)


def test_inflight_callbacks_fail_when_the_socket_closes(h: Harness) -> None:
    page = h.open("A")
    h.wait_received(page, 1)
    for request_id, inputs in (("answered", [1]), ("running", [2]), ("persistent", [])):
        page.evaluate(
            "([id, inputs]) => post({type: 'callback_request', rendererId: 'A',"
            " requestId: id, payload: {inputs}})",
            [request_id, inputs],
        )
    h.wait(lambda: len(h.recv("callback_request")) == 3, 3, "three requests")
    answer = {
        "type": "callback_response",
        "rendererId": "A",
        "requestId": "answered",
        "payload": {"status": "prevent_update"},
    }
    h.push(answer)
    h.wait_received(page, 2)
    h.push(close=1011, reason="Internal error")
    got = h.wait_received(page, 4)
    # Only the request with inputs that had no answer yet fails, and before
    # `disconnected` (which settles the rest as prevent_update).
    assert got[1:] == [
        answer,
        {
            "type": "callback_response",
            "rendererId": "A",
            "requestId": "running",
            "payload": {"status": "error", "message": "connection lost"},
        },
        {"type": "disconnected", "rendererId": "", "payload": {"reason": "Internal error"}},
    ]
    # It reconnects, rejoins, and does not fail the request a second time.
    second = h.second_connection(1, timeout=4)
    assert [(m["type"], m["rendererId"]) for m in second] == [("renderer_joined", "A")]
    assert types(h.wait_received(page, 5))[4:] == ["connected"]
