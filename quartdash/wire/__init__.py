"""The wire format, sans I/O: what crosses the socket and the rules applied to it.

* :mod:`~quartdash.wire.protocol` — parse and validate inbound frames, encode
  outbound ones (docs/protocol.md);
* :mod:`~quartdash.wire.outbox` — a connection's outbound buffer: ordered,
  coalescing, bounded in frames and bytes;
* :mod:`~quartdash.wire.rules` — flood, inactivity, send stall and byte
  budgets as arithmetic over a clock passed in;
* :mod:`~quartdash.wire.guards` — which ``Origin`` and ``Host`` may talk.

Nothing here touches a socket, the event loop's clock, Quart or Dash.
"""
