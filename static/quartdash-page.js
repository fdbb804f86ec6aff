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
 *     the worker (which waits on the same lock) also learns of a crash.
 * On pageshow from the back/forward cache it registers the renderer again.
 * Works with Dash's own worker too (it understands "disconnect").
 */
(function () {
  "use strict";
  var Native = window.SharedWorker;
  if (typeof Native !== "function" || Native.__quartdash) return;

  function Wrapped(url, options) {
    var worker = new Native(url, options);
    var port = worker.port;
    var post = port.postMessage.bind(port);
    port.postMessage = function (message, transfer) {
      if (message && message.type === "connect" && message.rendererId) watch(post, message);
      return transfer === undefined ? post(message) : post(message, transfer);
    };
    return worker;
  }

  function watch(post, connect) {
    var id = connect.rendererId;
    if (navigator.locks && navigator.locks.request) {
      // Never resolves: the lock is released only when the page dies.
      navigator.locks.request("quartdash-renderer:" + id, function () {
        return new Promise(function () {});
      });
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
