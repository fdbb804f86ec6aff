"""13. Streaming a chat answer with ``yield``.

What to look at: ask something and click "Send". The callback is an
``async def`` generator: its first ``yield`` clears the answer, then every
token of the (canned, offline) model's reply is yielded as a ``Patch`` that
appends to what the page already shows, so the answer grows word by word
without resending it. Ask again before it finishes: the newest question
wins, the older answer stops at once (its run is cancelled).

Run alone: ``hypercorn examples.chat_stream:asgi`` or ``python -m examples.chat_stream``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

from dash import Input, Output, Patch, State, dcc, html, no_update
from quart import Quart

from quartdash import DashBlueprint

ANSWERS = {
    "stream": ("A streaming callback is a generator: each yield goes to the page at once, "
               "over the WebSocket, and a Patch yield appends instead of resending the "
               "whole answer."),
    "cancel": ("Ask again while an answer is still streaming: the newest run wins, and the "
               "older one gets CancelledError at its next await."),
    "quartdash": ("quartdash hosts Dash apps on Quart: callbacks are asyncio tasks, and one "
                  "WebSocket per browser carries every tab's pushes."),
}
DEFAULT = ("I am a canned model: ask about streaming, cancelling or quartdash, and I will "
           "answer one token at a time.")


async def canned_model(question: str) -> AsyncIterator[str]:
    """Stands for a language model's streaming API: yields the reply token by token."""
    text = next((answer for key, answer in ANSWERS.items() if key in question.lower()), DEFAULT)
    for index, word in enumerate(text.split(" ")):
        await asyncio.sleep(random.uniform(0.02, 0.08))  # the model "thinking"
        yield word if index == 0 else " " + word


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint("chat_stream", __name__, url_prefix=prefix, websocket_callbacks=True)
    app.title = "Streaming chat"

    app.layout = html.Div([
        html.H3("Ask the canned model"),
        dcc.Input(id="chat-question", value="How does a streaming answer work?",
                  style={"width": "60%"}),
        html.Button("Send", id="chat-send"),
        html.Div(id="chat-answer", children="",
                 style={"margin": "1em 0", "minHeight": "3em", "whiteSpace": "pre-wrap"}),
        html.Div(id="chat-status", children="Ask something.", style={"color": "#666"}),
    ], style={"maxWidth": "50em"})

    @app.callback(
        Output("chat-answer", "children"),
        Output("chat-status", "children"),
        Input("chat-send", "n_clicks"),
        State("chat-question", "value"),
        prevent_initial_call=True,
    )
    async def answer(n_clicks, question):
        yield "", "thinking..."
        started, count = time.monotonic(), 0
        async for token in canned_model(question or ""):
            growing = Patch()
            growing += token  # appended in the page: the answer is never resent
            count += 1
            yield growing, no_update
        seconds = time.monotonic() - started
        yield no_update, f"done: {count} tokens in {seconds:.1f} s"

    return app


asgi = Quart(__name__)
asgi.register_blueprint(build())

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
