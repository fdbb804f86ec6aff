/* The clientside half of tests/apps/live_app.py's event stream: every "tick"
 * event is kept (window.__ticks, for the tests) and drawn on the canvas,
 * without going through dash-renderer's store. */
(function () {
  "use strict";
  window.__ticks = [];
  window.__lost = [];
  function draw(tick) {
    var canvas = document.getElementById("events-canvas");
    if (!canvas) return;
    var context = canvas.getContext("2d");
    var x = tick.i % canvas.width;
    if (x === 0) context.clearRect(0, 0, canvas.width, canvas.height);
    context.fillRect(x, canvas.height - tick.v, 1, tick.v);
  }
  window.quartdash.on("tick", function (tick) {
    window.__ticks.push(tick.i);
    draw(tick);
  });
  window.quartdash.on("events-lost", function (lost) {
    window.__lost.push(lost);
  });
})();
