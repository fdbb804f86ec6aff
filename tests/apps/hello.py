"""A tiny Quart app for the infrastructure tests: an HTML page and a WebSocket echo."""

from __future__ import annotations

import os

from quart import Quart, websocket

asgi = Quart(__name__)

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>hello</title>
  <link rel="icon" href="data:,">
</head>
<body>
  <h1>hello from quart</h1>
  <button id="btn" type="button">click me</button>
  <p id="out">not clicked</p>
  <script>
    document.getElementById("btn").addEventListener("click", () => {
      document.getElementById("out").textContent = "clicked";
    });
  </script>
</body>
</html>
"""


@asgi.get("/")
async def index() -> tuple[str, int, dict[str, str]]:
    return PAGE, 200, {"Content-Type": "text/html; charset=utf-8"}


@asgi.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@asgi.websocket("/ws")
async def echo() -> None:
    while True:
        message = await websocket.receive()
        await websocket.send(message)


@asgi.get("/env/<name>")
async def env(name: str) -> str:
    return os.environ.get(name, "")


@asgi.get("/pid")
async def pid() -> str:
    return str(os.getpid())
