/*
 * quartdash SharedWorker: one WebSocket per browser (per app), shared by
 * every tab ("renderer") of that app.
 *
 * A drop-in for dash-renderer's dash-ws-worker.js: the renderer-facing
 * messages are the same (in: connect, disconnect, callback_request,
 * get_props_response, tab_visible; out: connected, disconnected,
 * callback_response, set_props, set_props_batch, get_props_request, error).
 * On top of that it tells the server when a tab arrives and leaves
 * (renderer_joined / renderer_left, see docs/protocol.md), and when the
 * socket closes under a callback that has inputs and no answer yet, it
 * answers that callback itself: status "error", message "connection lost"
 * (Dash's worker leaves it to settle as prevent_update).
 *
 * Tab-close detection: a renderer sends `disconnect` only when its app
 * unmounts, not when the tab is closed. For that we listen for the
 * MessagePort `close` event, which Chromium fires on our end of the port
 * when the owning document is destroyed - but only with the
 * MessagePortCloseEvent runtime feature on: it is NOT on by default (checked
 * in Chromium 156). A liveness ping is no fallback: the renderer ignores
 * messages it does not know, so it cannot answer one. Without the close
 * event a closed tab stays registered until the app's last tab closes; the
 * browser then ends this worker and its socket (close 1001 or 1006), which
 * ends every renderer of the connection on the server. When the last tab
 * closes with the event on, the worker usually sends renderer_left and
 * closes with 1000, but may be ended first (1001/1006).
 *
 * Config defaults come from our own URL (the server writes them there, so
 * they are known on the very first connect): ?heartbeat=ms
 * &heartbeat_timeout=ms&inactivity=ms (0 disables)&max_retries=n.
 * Numbers in a renderer's `connect` payload override them.
 *
 * Resume (docs/protocol.md): the worker says `hello` on a new socket and the
 * server answers `session` with a token. From then on every message either
 * way carries a sequence number, and each side acks what it applied. When
 * the socket drops, the worker reconnects at once and sends `resume` with
 * the token and the last number it applied; the server replays what
 * followed and the worker resends what the server had not received, both
 * exactly once. Meanwhile the tabs notice nothing. If the session cannot be
 * resumed (`session_lost`, or the window passed), the tabs are told: their
 * pending callbacks settle (`disconnected`/`connected`, so persistent
 * callbacks restart), in-flight ones fail with "connection lost", and every
 * page gets a `quartdash_event` "continuity-lost" (quartdash-page.js).
 *
 * Events (ctx.websocket.send_event, docs/protocol.md): an `event` message
 * goes to its tab's port as `quartdash_app_event`, and `events_lost` as a
 * `quartdash_event` "events-lost"; the renderer ignores both, the page helper
 * hands them to `window.quartdash.on(name, handler)`. They never touch the
 * renderer's store.
 *
 * Partial reads (get_prop(path=...)): dash-renderer 4.4 ignores `path` and
 * would send the whole property. For a tab whose page helper said so in its
 * `connect` (payload.quartdashHelper), a `get_props_request` with a `path`
 * goes to the helper instead (`quartdash_get_props_request`): it reads the
 * item in the page and answers with only that, marked `pathResolved`. Other
 * tabs answer through the renderer and the server reads the path.
 *
 * Revoked (close 4003, the app's `revoke`): the session is over and so are
 * the credentials it was opened with. The worker neither reconnects nor
 * resumes, and what the tabs send meanwhile does not reconnect either (a
 * callback with inputs fails at once with "revoked"): only a page that
 * (re)loads, i.e. a renderer `connect`, opens a socket again. Every page
 * gets a `quartdash_event` "revoked".
 */
(() => {
  "use strict";

  const query = new URLSearchParams(self.location.search);
  const setting = (name, fallback) => {
    const value = Number(query.get(name));
    return query.has(name) && Number.isFinite(value) && value >= 0 ? value : fallback;
  };
  const config = {
    heartbeatInterval: setting("heartbeat", 30000),
    heartbeatTimeout: setting("heartbeat_timeout", 10000),
    inactivityTimeout: setting("inactivity", 300000),
    maxRetries: setting("max_retries", 10),
    initialRetryDelay: 1000,
    maxRetryDelay: 30000,
  };

  // Close codes after which we do not reconnect on our own (docs/protocol.md);
  // the next message from a renderer still reconnects.
  const NO_RECONNECT = new Set([1000, 1008, 4001, 4003]);
  // The app revoked this session (and, it should have, its credentials).
  const REVOKED = 4003;
  // Server message types a renderer understands; anything else is dropped.
  const TO_RENDERER = new Set(["callback_response", "set_props", "get_props_request", "error"]);
  // Messages about the connection itself: no sequence number, never forwarded.
  const CONTROL = new Set(["heartbeat_ack", "session", "resumed", "session_lost", "ack"]);
  const ACK_EVERY = 32; // server messages applied between two acks (or 1 s)
  const CLIENT_LOG_MAX = 4000; // our messages kept until the server acks them

  const renderers = new Map(); // rendererId -> MessagePort
  const helpers = new Set(); // renderers whose page runs quartdash's page helper
  let serverUrl = null;
  let ws = null; // the current socket while CONNECTING or OPEN, else null
  let queue = []; // {rendererId, data, requestId} waiting for an open socket
  // callback_requests written to the current socket and not answered yet
  // (requestId -> rendererId). If the socket closes first, their renderers
  // are told they failed instead of waiting for an answer that cannot come.
  const inflight = new Map();
  // Renderers that have talked to the server. A renderer "joins" on its first
  // message, not on `connect`: it sends that only once its layout is
  // rendered, so the pushes of the persistent callbacks its join starts find
  // their components (a push that arrives earlier is dropped by the renderer).
  const contacted = new Set();
  let retries = 0;
  let retryTimer = null;
  let heartbeatTimer = null;
  let ackTimer = null;
  let idleTimer = null;
  let lastActivity = Date.now();

  // The resumable session: its token, the last server message applied, our
  // own numbered messages the server has not acked yet.
  const session = {
    token: null, timeout: 0, lastSeq: 0, clientSeq: 0, log: [], unacked: 0, ackTimer: null,
  };
  let droppedAt = 0; // when the socket of a resumable session dropped (0: it did not)
  let revoked = null; // the reason of a 4003 close: no socket until a page (re)loads
  let awaitingResume = false; // `resume` sent on this socket, no answer yet

  const isOpen = () => ws !== null && ws.readyState === WebSocket.OPEN;

  // ---- socket lifecycle -------------------------------------------------

  function connect() {
    if (ws || !serverUrl) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    let sock;
    try {
      sock = new WebSocket(serverUrl);
    } catch (err) {
      console.warn("[quartdash worker] cannot open WebSocket:", err);
      return;
    }
    ws = sock;
    // Events of a socket we have already given up on must not touch state.
    sock.onopen = () => sock === ws && onOpen();
    sock.onmessage = (event) => sock === ws && onFrame(event.data);
    sock.onclose = (event) => {
      if (sock !== ws) return;
      ws = null;
      onClosed(event.code, event.reason);
    };
  }

  // Close from our side and forget the socket at once: an unresponsive
  // server may never finish the closing handshake, so we do not wait for it.
  function drop(code, reason) {
    const sock = ws;
    if (!sock) return;
    ws = null;
    try {
      sock.close(code, reason);
    } catch (err) {
      console.debug("[quartdash worker] close failed:", err);
    }
    onClosed(code, reason);
  }

  function onOpen() {
    retries = 0;
    lastActivity = Date.now();
    startHeartbeat();
    armIdleTimer();
    if (droppedAt && session.token) {
      // A new socket for the same session: nothing else until the answer.
      awaitingResume = true;
      ws.send(JSON.stringify({
        type: "resume", payload: { token: session.token, lastSeq: session.lastSeq },
      }));
      return;
    }
    ws.send(JSON.stringify({ type: "hello", payload: { resume: 1 } }));
    // Rejoin first, so the server knows every tab before their queued requests.
    for (const rendererId of contacted) {
      ws.send(JSON.stringify({ type: "renderer_joined", rendererId }));
    }
    flushQueue();
    // The renderer re-triggers its persistent callbacks on a `connected`
    // that follows a `disconnected`; the server deduplicates them.
    for (const [rendererId, port] of renderers) port.postMessage({ type: "connected", rendererId });
  }

  function flushQueue() {
    for (const { rendererId, data, requestId } of queue) {
      ws.send(data);
      if (requestId !== undefined) inflight.set(requestId, rendererId);
    }
    queue = [];
  }

  function onClosed(code, reason) {
    stopTimers();
    awaitingResume = false;
    if (code === REVOKED) {
      revoked = reason || "Revoked";
      clearTimeout(retryTimer);
      retryTimer = null;
      queue = [];
    }
    if (session.token && session.timeout > 0 && renderers.size > 0 && !NO_RECONNECT.has(code)) {
      // The session waits for us on the server: come back quietly and fast.
      if (!droppedAt) droppedAt = Date.now();
      if (Date.now() - droppedAt < session.timeout) {
        scheduleResume();
        return;
      }
      continuityLost("expired"); // the window passed before we got through
    } else if (session.token) {
      // Closed for good (the server said so, or no tab is left): the session
      // is gone; what the tabs send next starts a fresh one.
      resetSession();
    }
    tellDisconnected(reason);
    if (code === REVOKED) {
      console.info("[quartdash worker] the session was revoked:", revoked);
      const event = { type: "quartdash_event", name: "revoked", payload: { reason: revoked } };
      for (const port of renderers.values()) port.postMessage(event);
    }
    if (renderers.size > 0 && !NO_RECONNECT.has(code)) scheduleReconnect();
  }

  function tellDisconnected(reason, lost) {
    // Before `disconnected` (which settles whatever is left as prevent_update):
    // a callback that was running on the server is reported as failed.
    const message = lost ? "connection lost: the session could not be resumed (" + lost + ")"
      : "connection lost";
    for (const [requestId, rendererId] of inflight) {
      post(rendererId, {
        type: "callback_response", rendererId, requestId,
        payload: { status: "error", message },
      });
    }
    inflight.clear();
    // Same as Dash: every close (also a failed attempt) tells the renderers,
    // which settle their pending callbacks as prevent_update.
    const note = { type: "disconnected", rendererId: "", payload: { reason: reason || "Connection closed" } };
    for (const port of renderers.values()) port.postMessage(note);
  }

  // Continuity is lost: the session and what it held are gone. Tell every
  // tab and page, then start afresh (the server sends a new `session`).
  function continuityLost(reason) {
    console.warn("[quartdash worker] the session could not be resumed:", reason);
    resetSession();
    tellDisconnected("Session lost", reason);
    const event = { type: "quartdash_event", name: "continuity-lost", payload: { reason } };
    for (const [rendererId, port] of renderers) {
      port.postMessage(event);
      if (isOpen()) port.postMessage({ type: "connected", rendererId });
    }
  }

  function resetSession() {
    session.token = null;
    session.lastSeq = 0;
    session.clientSeq = 0;
    session.log = [];
    session.unacked = 0;
    clearTimeout(session.ackTimer);
    session.ackTimer = null;
    droppedAt = 0;
  }

  function scheduleResume() {
    if (retryTimer) return;
    // Quick retries while the window lasts: the server keeps the session.
    const delay = Math.min(1000, 100 * 2 ** Math.min(retries, 4)) * (1 + Math.random() / 2);
    retries++;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect();
    }, delay);
  }

  function scheduleReconnect() {
    if (retryTimer) return;
    if (retries >= config.maxRetries) {
      console.warn("[quartdash worker] giving up after", retries, "reconnect attempts");
      return;
    }
    // Exponential back-off with jitter, so tabs of many users do not all
    // come back at the same instant after a server restart.
    const base = config.initialRetryDelay * 2 ** retries;
    const delay = Math.min(config.maxRetryDelay, base * (1 + Math.random()));
    retries++;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect();
    }, delay);
  }

  // A renderer action: reconnect now, whatever the last close code was,
  // with a fresh retry budget.
  function reconnectNow() {
    if (ws || revoked !== null) return;
    retries = 0;
    connect();
  }

  function send(message) {
    if (message.type !== "heartbeat") lastActivity = Date.now();
    // Callbacks without inputs (persistent ones) are not tracked: the renderer
    // starts them again itself after a reconnect, so losing one is no failure.
    const tracked = message.type === "callback_request" && message.payload
      && Array.isArray(message.payload.inputs) && message.payload.inputs.length > 0;
    const requestId = tracked ? message.requestId : undefined;
    if (revoked !== null) {
      // No socket for revoked credentials: fail what waits for an answer.
      if (requestId !== undefined) {
        post(message.rendererId, {
          type: "callback_response", rendererId: message.rendererId, requestId,
          payload: { status: "error", message: "revoked: " + revoked },
        });
      }
      return;
    }
    if (session.token) {
      // Numbered and kept until acked: resent after a resume if the server
      // did not get it, dropped by the server if it did.
      message.seq = ++session.clientSeq;
      const data = JSON.stringify(message);
      session.log.push({ seq: message.seq, data });
      if (session.log.length > CLIENT_LOG_MAX) session.log.shift(); // cannot resume exactly now
      if (requestId !== undefined) inflight.set(requestId, message.rendererId);
      if (isOpen() && !awaitingResume) ws.send(data);
      else if (!ws) reconnectNow();
      return;
    }
    const data = JSON.stringify(message);
    if (isOpen()) {
      ws.send(data);
      if (requestId !== undefined) inflight.set(requestId, message.rendererId);
      return;
    }
    queue.push({ rendererId: message.rendererId, data, requestId });
    reconnectNow();
  }

  // ---- resume ----------------------------------------------------------------

  function onControl(message) {
    const payload = message.payload || {};
    switch (message.type) {
      case "session":
        // A fresh session (first contact, or after a loss): number from 1.
        session.token = payload.token;
        session.timeout = Number(payload.resumeTimeout) || 0;
        session.lastSeq = 0;
        session.clientSeq = 0;
        session.log = [];
        droppedAt = 0;
        break;
      case "resumed": {
        session.token = payload.token; // single use: the next resume needs this one
        awaitingResume = false;
        droppedAt = 0;
        retries = 0;
        const got = Number(payload.lastSeq) || 0;
        session.log = session.log.filter((entry) => entry.seq > got);
        for (const entry of session.log) ws.send(entry.data); // in order, once more
        if (session.log.length && session.log[0].seq !== got + 1) {
          console.warn("[quartdash worker] messages older than the client log were lost");
        }
        flushQueue();
        break;
      }
      case "session_lost":
        awaitingResume = false;
        continuityLost(payload.reason || "unknown");
        flushQueue();
        break;
      case "ack": {
        const seq = Number(payload.seq) || 0;
        if (session.log.length && session.log[0].seq <= seq) {
          session.log = session.log.filter((entry) => entry.seq > seq);
        }
        break;
      }
      default:
        break; // heartbeat_ack: the frame itself was the news
    }
  }

  // A numbered server message: apply it once (a replay may repeat what we had).
  function fresh(message) {
    if (typeof message.seq !== "number") return true;
    if (message.seq <= session.lastSeq) return false;
    session.lastSeq = message.seq;
    if (++session.unacked >= ACK_EVERY) sendAck();
    else if (!session.ackTimer) session.ackTimer = setTimeout(sendAck, 1000);
    return true;
  }

  function sendAck() {
    clearTimeout(session.ackTimer);
    session.ackTimer = null;
    if (!session.unacked || !isOpen() || awaitingResume) return;
    session.unacked = 0;
    ws.send(JSON.stringify({ type: "ack", payload: { seq: session.lastSeq } }));
  }

  // ---- heartbeat and inactivity ------------------------------------------

  function startHeartbeat() {
    clearInterval(heartbeatTimer);
    heartbeatTimer = null;
    if (!(config.heartbeatInterval > 0)) return;
    heartbeatTimer = setInterval(() => {
      if (!isOpen()) return;
      ws.send(JSON.stringify({ type: "heartbeat" }));
      // Armed once per silence, not per beat: with an interval shorter
      // than the timeout, re-arming on every beat would never fire.
      if (!ackTimer) {
        ackTimer = setTimeout(() => {
          ackTimer = null;
          drop(4000, "Heartbeat timeout");
        }, config.heartbeatTimeout);
      }
    }, config.heartbeatInterval);
  }

  // Fires exactly when the idle period would end; if there was activity in
  // the meantime it re-arms for the remainder (cheaper than resetting a
  // timer on every message).
  function armIdleTimer() {
    clearTimeout(idleTimer);
    idleTimer = null;
    if (!(config.inactivityTimeout > 0) || !isOpen()) return;
    const remaining = lastActivity + config.inactivityTimeout - Date.now();
    if (remaining <= 0) {
      drop(4001, "Inactivity timeout");
      return;
    }
    idleTimer = setTimeout(armIdleTimer, remaining);
  }

  function stopTimers() {
    clearInterval(heartbeatTimer);
    clearTimeout(ackTimer);
    clearTimeout(idleTimer);
    heartbeatTimer = ackTimer = idleTimer = null;
  }

  // ---- server -> renderers ------------------------------------------------

  function onFrame(raw) {
    // Any frame proves the server is alive.
    clearTimeout(ackTimer);
    ackTimer = null;
    let parsed;
    try {
      parsed = JSON.parse(raw);
    } catch (err) {
      console.warn("[quartdash worker] dropped a frame that is not JSON");
      return;
    }
    const batch = Array.isArray(parsed);
    const messages = (batch ? parsed : [parsed]).filter((m) => {
      if (!m || typeof m !== "object") return false;
      if (CONTROL.has(m.type)) {
        onControl(m);
        return false;
      }
      return fresh(m);
    });
    if (messages.length) lastActivity = Date.now();
    if (!batch) {
      if (messages.length) forward(messages[0]);
      return;
    }
    // Consecutive set_props for a renderer go out as one set_props_batch
    // (the renderer applies it in one React batch). A renderer's pending
    // batch is flushed before any other message to that renderer, so its
    // set_props and callback_response keep the order the server chose.
    const pending = new Map(); // rendererId -> [payload, ...]
    const flush = (rendererId) => {
      const payload = pending.get(rendererId);
      if (!payload) return;
      pending.delete(rendererId);
      post(rendererId, { type: "set_props_batch", rendererId, payload });
    };
    for (const message of messages) {
      if (message.type === "set_props") {
        const list = pending.get(message.rendererId);
        if (list) list.push(message.payload);
        else pending.set(message.rendererId, [message.payload]);
      } else {
        flush(message.rendererId);
        forward(message);
      }
    }
    for (const rendererId of [...pending.keys()]) flush(rendererId);
  }

  function forward(message) {
    if (message.type === "callback_response") inflight.delete(message.requestId);
    const payload = message.payload || {};
    if (message.type === "event") {
      post(message.rendererId, { type: "quartdash_app_event", name: payload.name, payload: payload.data });
      return;
    }
    if (message.type === "events_lost") {
      post(message.rendererId, { type: "quartdash_event", name: "events-lost", payload: { total: payload.count } });
      return;
    }
    if (message.type === "get_props_request" && Array.isArray(payload.path)
        && helpers.has(message.rendererId)) {
      post(message.rendererId, { ...message, type: "quartdash_get_props_request" });
      return;
    }
    if (!TO_RENDERER.has(message.type)) {
      console.debug("[quartdash worker] dropped unknown server message", message.type);
      return;
    }
    post(message.rendererId, message);
  }

  function post(rendererId, message) {
    const port = renderers.get(rendererId);
    if (port) port.postMessage(message);
    else console.debug("[quartdash worker] dropped", message.type, "for unknown renderer", rendererId);
  }

  // ---- renderers -> server ------------------------------------------------

  function join(rendererId, port, payload) {
    payload = payload || {};
    if (typeof payload.serverUrl === "string") serverUrl = payload.serverUrl;
    const overrides = {};
    if (typeof payload.inactivityTimeout === "number") overrides.inactivityTimeout = payload.inactivityTimeout;
    if (typeof payload.heartbeatInterval === "number") overrides.heartbeatInterval = payload.heartbeatInterval;
    const heartbeatChanged = "heartbeatInterval" in overrides && overrides.heartbeatInterval !== config.heartbeatInterval;
    Object.assign(config, overrides);

    const known = renderers.get(rendererId) === port;
    renderers.set(rendererId, port);
    if (payload.quartdashHelper) helpers.add(rendererId);
    else helpers.delete(rendererId);
    // A page (re)loaded: it may bring new credentials (a new login).
    revoked = null;
    // Whatever the socket's state: the first tab usually connects before it opens.
    if (!known) watchLock(rendererId, port);
    if (!isOpen()) {
      // onOpen sends renderer_joined and `connected` to every renderer.
      reconnectNow();
      return;
    }
    if (heartbeatChanged) startHeartbeat();
    armIdleTimer();
    port.postMessage({ type: "connected", rendererId });
  }

  // quartdash's page helper (quartdash-page.js) holds a Web Lock named after
  // its renderer for the page's whole life: waiting on it tells us when the
  // tab is gone, even without `disconnect` (crash) and without the MessagePort
  // close event. Only wait when the page holds or asked for it, or we would
  // be granted it at once (Dash's page has no helper).
  function watchLock(rendererId, port) {
    const locks = self.navigator && self.navigator.locks;
    if (!locks) return;
    const name = "quartdash-renderer:" + rendererId;
    locks.query().then((state) => {
      const mine = (lock) => lock.name === name;
      if (!state.held.some(mine) && !state.pending.some(mine)) return;
      locks.request(name, () => {
        if (renderers.get(rendererId) === port) leave(rendererId);
      });
    }, (err) => console.debug("[quartdash worker] locks unavailable:", err));
  }

  function leave(rendererId) {
    if (!renderers.delete(rendererId)) return;
    helpers.delete(rendererId);
    // Its queued messages are moot, and a socket that is not open has no
    // server-side state for it (a closed connection ends all its renderers).
    queue = queue.filter((entry) => entry.rendererId !== rendererId);
    for (const [requestId, owner] of inflight) if (owner === rendererId) inflight.delete(requestId);
    // A resumable session outlives the socket: it must hear that the tab left.
    if (contacted.delete(rendererId) && (isOpen() || session.token)) {
      send({ type: "renderer_left", rendererId });
    }
    if (renderers.size === 0) {
      clearTimeout(retryTimer);
      retryTimer = null;
      queue = [];
      drop(1000, "Client disconnect");
    }
  }

  function onRendererMessage(port, message) {
    if (!message || typeof message !== "object") return;
    const { rendererId } = message;
    switch (message.type) {
      case "connect":
        join(rendererId, port, message.payload);
        break;
      case "disconnect":
        // Only the port that registered a renderer may remove it.
        if (renderers.get(rendererId) === port) leave(rendererId);
        break;
      case "tab_visible":
        // The user is looking: reset idleness, and come back if we had gone.
        lastActivity = Date.now();
        if (renderers.size > 0) reconnectNow();
        break;
      case "callback_request":
      case "get_props_response":
        if (!contacted.has(rendererId)) {
          contacted.add(rendererId);
          // Not open: onOpen sends it for every contacted renderer (queuing
          // it as well would send it twice).
          if (isOpen()) send({ type: "renderer_joined", rendererId });
        }
        if (message.pathResolved === true) {
          send({ type: message.type, rendererId, requestId: message.requestId, payload: message.payload, pathResolved: true });
        } else {
          send({ type: message.type, rendererId, requestId: message.requestId, payload: message.payload });
        }
        break;
      default:
        console.debug("[quartdash worker] ignored renderer message", message.type);
    }
  }

  self.addEventListener("connect", (event) => {
    const port = event.ports[0];
    port.onmessage = (msg) => onRendererMessage(port, msg.data);
    // The tab went away (closed, navigated, crashed) without `disconnect`:
    // forget every renderer that lived behind this port.
    port.addEventListener("close", () => {
      for (const [rendererId, owner] of [...renderers]) if (owner === port) leave(rendererId);
    });
  });
})();
