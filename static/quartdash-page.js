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
 * It also surfaces the worker's events to the page (docs/reliability.md):
 * `window.quartdash.on(name, handler)`, a DOM event `quartdash:<name>` on
 * window, for "continuity-lost" the attribute
 * `data-quartdash-continuity="lost"` on <html> and a console warning, and,
 * when the layout has a component with id `_quartdash_continuity` (e.g. a
 * dcc.Store), its `data` prop set to `{reason, at}` so callbacks can react.
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

  function onEvent(name, payload) {
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
    window.dispatchEvent(new CustomEvent("quartdash:" + name, { detail: payload }));
    (handlers[name] || []).forEach(function (handler) {
      try {
        handler(payload);
      } catch (err) {
        console.error("[quartdash] a handler of", name, "failed:", err);
      }
    });
  }

  function Wrapped(url, options) {
    var worker = new Native(url, options);
    var port = worker.port;
    // Beside the renderer's own listener: messages the renderer ignores.
    port.addEventListener("message", function (event) {
      var message = event.data;
      if (message && message.type === "quartdash_event") onEvent(message.name, message.payload);
    });
    var post = port.postMessage.bind(port);
    // Messages held back until this page holds its renderer's lock, or null.
    var held = null;
    var watched = {};
    port.postMessage = function (message) {
      if (held) {
        held.push(arguments);
        return;
      }
      if (message && message.type === "connect" && message.rendererId
          && !watched[message.rendererId]) {
        watched[message.rendererId] = true;
        held = [arguments];
        watch(post, message, function () {
          var queued = held || [];
          held = null;
          for (var i = 0; i < queued.length; i++) post.apply(null, queued[i]);
        });
        return;
      }
      return post.apply(null, arguments);
    };
    return worker;
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
