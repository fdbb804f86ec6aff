/*
 * quartdash page helper: lets the SharedWorker learn, reliably, that this tab
 * went away, so the server stops this tab's persistent callbacks at once.
 *
 * dash-renderer only tells its worker "disconnect" when React unmounts, which
 * never happens when a tab is closed. This script wraps window.SharedWorker
 * before the renderer creates it, notes the rendererId of the "connect"
 * message, and then:
 *   - on pagehide (tab closed, navigation) posts {type: "disconnect"} itself;
 *   - holds a Web Lock named after the renderer for the page's whole life, so
 *     the worker (which waits on the same lock) also learns of a crash. The
 *     worker only waits on a lock that the page holds, so "connect" (and what
 *     follows it) is held back until the lock is granted (a few ms).
 * On pageshow from the back/forward cache it registers the renderer again.
 * Works with Dash's own worker too (it understands "disconnect").
 *
 * It also surfaces events to the page (docs/websocket-callbacks.md):
 * `window.quartdash.on(name, handler)` (returns a function that removes the
 * handler) and a DOM event `quartdash:<name>` on window, for
 *   - the app's own events, `ctx.websocket.send_event(name, data)` and
 *     `topic.send_event(...)`: the handler gets `data`;
 *   - quartdash's: "continuity-lost" (docs/reliability.md; also the attribute
 *     `data-quartdash-continuity="lost"` on <html>, a console warning, and,
 *     when the layout has a component with id `_quartdash_continuity` (e.g. a
 *     dcc.Store), its `data` prop set to `{reason, at}` so callbacks can
 *     react), and "events-lost" `{count, total}` when events to this tab did
 *     not fit the connection's budget. The server refuses app events with
 *     these names (or any starting with "quartdash").
 *
 * And it answers `get_prop(path=...)` reads (the worker sends them here, as
 * dash-renderer 4.4 ignores `path`): it reads the component's prop from the
 * renderer's store (window.dash_component_api.getLayout), resolves the path
 * with Dash 4.5's rules and sends only that item back.
 *
 * For "revoked" (the app closed the session with 4003: docs/live-sessions.md)
 * the attribute `data-quartdash-revoked` holds the reason: a page may show a
 * "signed out" notice or send the user to the login page.
 */
(function () {
  "use strict";
  var Native = window.SharedWorker;
  if (typeof Native !== "function" || Native.__quartdash) return;

  var handlers = {};
  var api = window.quartdash = window.quartdash || {};
  api.on = function (name, handler) {
    (handlers[name] = handlers[name] || []).push(handler);
    return function off() {
      handlers[name] = (handlers[name] || []).filter(function (h) { return h !== handler; });
    };
  };

  var lostTotal = 0; // events-lost: the last running total the server sent

  function onEvent(name, payload) {
    if (name === "events-lost") {
      var total = Number(payload && payload.total) || 0;
      payload = { count: Math.max(0, total - lostTotal), total: total };
      lostTotal = Math.max(lostTotal, total);
      console.warn("[quartdash] events to this tab were dropped (over the connection's budget):",
        payload.count);
    }
    emit(name, payload);
  }

  function emit(name, payload) {
    if (name === "continuity-lost") {
      console.warn("[quartdash] the live session was lost and restarted:", payload && payload.reason);
      document.documentElement.setAttribute("data-quartdash-continuity", "lost");
      // Into the layout's _quartdash_continuity component (a dcc.Store), if it
      // has one: its callbacks can react (a Store renders no DOM element).
      var set = window.dash_clientside && window.dash_clientside.set_props;
      var api = window.dash_component_api;
      try {
        if (set && api && api.getLayout && api.getLayout("_quartdash_continuity")) {
          set("_quartdash_continuity", { data: { reason: payload && payload.reason, at: Date.now() } });
        }
      } catch (err) {
        console.debug("[quartdash] could not set _quartdash_continuity:", err);
      }
    }
    if (name === "revoked") {
      console.info("[quartdash] the live session was revoked:", payload && payload.reason);
      document.documentElement.setAttribute("data-quartdash-revoked",
                                            (payload && payload.reason) || "revoked");
    }
    emitApp(name, payload);
  }

  function Wrapped(url, options) {
    var worker = new Native(url, options);
    var port = worker.port;
    // Beside the renderer's own listener: messages the renderer ignores.
    var post = port.postMessage.bind(port);
    port.addEventListener("message", function (event) {
      var message = event.data;
      if (!message) return;
      if (message.type === "quartdash_app_event") emitApp(message.name, message.payload);
      else if (message.type === "quartdash_event") onEvent(message.name, message.payload);
      else if (message.type === "quartdash_get_props_request") answerPathRead(post, message);
    });
    // Messages held back until this page holds its renderer's lock, or null.
    var held = null;
    var watched = {};
    port.postMessage = function (message) {
      var args = Array.prototype.slice.call(arguments);
      if (message && message.type === "connect" && message.rendererId) {
        // Tell the worker this tab has the helper (it answers path reads).
        message = args[0] = Object.assign({}, message, {
          payload: Object.assign({}, message.payload, { quartdashHelper: 1 }),
        });
      }
      if (held) {
        held.push(args);
        return;
      }
      if (message && message.type === "connect" && message.rendererId
          && !watched[message.rendererId]) {
        watched[message.rendererId] = true;
        held = [args];
        watch(post, message, function () {
          var queued = held || [];
          held = null;
          for (var i = 0; i < queued.length; i++) post.apply(null, queued[i]);
        });
        return;
      }
      return post.apply(null, args);
    };
    return worker;
  }

  // The DOM event and the handlers: all an app event gets, and what
  // quartdash's own events get after their built-in reaction.
  function emitApp(name, payload) {
    if (typeof name !== "string") return;
    window.dispatchEvent(new CustomEvent("quartdash:" + name, { detail: payload }));
    (handlers[name] || []).forEach(function (handler) {
      try {
        handler(payload);
      } catch (err) {
        console.error("[quartdash] a handler of", name, "failed:", err);
      }
    });
  }

  // get_prop(path=...): Dash 4.5's resolvePropPath. A string selects an own
  // key of an object, a safe integer an item of an array (negative from the
  // end); anything else is undefined (sent as null). An empty path: all of it.
  function resolvePath(value, path) {
    var current = value;
    for (var i = 0; i < path.length; i++) {
      var step = path[i];
      if (typeof step === "string" && current !== null && typeof current === "object"
          && !Array.isArray(current) && Object.prototype.hasOwnProperty.call(current, step)) {
        current = current[step];
      } else if (typeof step === "number" && Number.isSafeInteger(step) && Array.isArray(current)) {
        var index = step < 0 ? current.length + step : step;
        if (index < 0 || index >= current.length) return undefined;
        current = current[index];
      } else {
        return undefined;
      }
    }
    return current;
  }

  function answerPathRead(post, message) {
    var payload = message.payload || {};
    var id = payload.componentId;
    if (typeof id === "string" && id.charAt(0) === "{") {
      try {
        id = JSON.parse(id);
      } catch (err) {
        console.debug("[quartdash] component id is not JSON:", id);
      }
    }
    var result = {};
    var api = window.dash_component_api;
    var node = api && typeof api.getLayout === "function" ? api.getLayout(id) : undefined;
    if (node && node.props) {
      (payload.properties || []).forEach(function (name) {
        var value = resolvePath(node.props[name], payload.path || []);
        result[name] = value === undefined ? null : value;
      });
    } else {
      console.warn("[quartdash] get_prop: component", payload.componentId, "not found in layout");
    }
    post({ type: "get_props_response", rendererId: message.rendererId, requestId: message.requestId,
      payload: result, pathResolved: true });
  }

  // `ready` is called once the lock is held (or cannot be had): the worker
  // looks for the lock when `connect` arrives, so `connect` must wait for it.
  function watch(post, connect, ready) {
    var id = connect.rendererId;
    var done = false;
    var flush = function () {
      if (!done) {
        done = true;
        ready();
      }
    };
    if (navigator.locks && navigator.locks.request) {
      // Never resolves: the lock is released only when the page dies.
      navigator.locks.request("quartdash-renderer:" + id, function () {
        flush();
        return new Promise(function () {});
      }).then(flush, function (err) {
        console.debug("[quartdash] no Web Lock for this tab:", err);
        flush();
      });
    } else {
      flush(); // no Web Locks (e.g. not a secure context)
    }
    window.addEventListener("pagehide", function () {
      post({ type: "disconnect", rendererId: id });
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) post(connect);
    });
  }

  Wrapped.prototype = Native.prototype;
  Wrapped.__quartdash = true;
  window.SharedWorker = Wrapped;
})();
