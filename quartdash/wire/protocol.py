"""The wire protocol, sans I/O: parse and validate inbound frames, encode outbound ones.

Nothing here touches a socket or the event loop, so every rule can be tested
(and fuzzed) directly. See docs/protocol.md for the messages and codes.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson

# --- message types (the protocol's own words) -------------------------------

CALLBACK_REQUEST: Final = "callback_request"
GET_PROPS_RESPONSE: Final = "get_props_response"
HEARTBEAT: Final = "heartbeat"
RENDERER_JOINED: Final = "renderer_joined"
RENDERER_LEFT: Final = "renderer_left"
# Resume (docs/protocol.md): a worker that can resume says so first (hello)
# or presents its token on a new socket (resume); both sides ack what they
# applied, so the other can drop it from its replay log.
HELLO: Final = "hello"
RESUME: Final = "resume"
ACK: Final = "ack"

CALLBACK_RESPONSE: Final = "callback_response"
SET_PROPS: Final = "set_props"
GET_PROPS_REQUEST: Final = "get_props_request"
ERROR: Final = "error"
HEARTBEAT_ACK: Final = "heartbeat_ack"
SESSION: Final = "session"
RESUMED: Final = "resumed"
SESSION_LOST: Final = "session_lost"
# Events to the page's JavaScript (ctx.websocket.send_event): ordinary,
# numbered messages, never seen by the renderer; events_lost tells a tab how
# many of its events did not fit the connection's event budget.
EVENT: Final = "event"
EVENTS_LOST: Final = "events_lost"

INBOUND_TYPES: Final = frozenset(
    {CALLBACK_REQUEST, GET_PROPS_RESPONSE, HEARTBEAT, RENDERER_JOINED, RENDERER_LEFT,
     HELLO, RESUME, ACK}
)

HEARTBEAT_ACK_FRAME: Final = b'{"type":"heartbeat_ack"}'

# Longest rendererId / requestId accepted: ids are kept while a tab or a
# request lives, so their size is bounded like everything else kept.
MAX_ID_LENGTH: Final = 256
# Error messages quote at most this many characters of what the client sent.
ECHO_LIMIT: Final = 40
# A resume token: 32 random bytes, URL-safe base64 (43 characters).
TOKEN_LENGTH: Final = 43
# Longest event name (ctx.websocket.send_event).
MAX_EVENT_NAME: Final = 256
# get_prop(path=...): the largest integer a JavaScript number holds exactly.
MAX_SAFE_INTEGER: Final = 2**53 - 1


class LostReason(enum.StrEnum):
    """Why a session could not be resumed (``session_lost``)."""

    UNKNOWN = "unknown"
    """No session has this token here: the window passed long ago, the token
    was already used, or the server restarted."""
    EXPIRED = "expired"
    """The session waited its resume window out."""
    FORBIDDEN = "forbidden"
    """The new connection is not the session's (origin or cookies differ)."""
    BUDGET = "budget"
    """What the client missed no longer fits the replay budget."""
    UNREACHABLE = "unreachable"
    """The worker that holds the session did not answer."""
    REVOKED = "revoked"
    """The session was closed by the app (``revoke``): it cannot come back."""


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server uses (docs/protocol.md)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1008
    INTERNAL_ERROR = 1011
    REJECTED = 4001
    REVOKED = 4003
    FLOOD = 4008
    SLOW_CONSUMER = 4009
    OVER_BUDGET = 4010
    SUPERSEDED = 4011


class ErrorCode(enum.StrEnum):
    """Codes carried in an ``error`` message's payload."""

    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    BATCH_TOO_LARGE = "batch_too_large"
    UNKNOWN_CALLBACK = "unknown_callback"
    NOT_WEBSOCKET = "not_websocket"
    DUPLICATE_REQUEST = "duplicate_request"
    UNKNOWN_REQUEST = "unknown_request"
    TOO_MANY_CALLBACKS = "too_many_callbacks"
    TOO_MANY_RENDERERS = "too_many_renderers"
    REJECTED = "rejected"


class ProtocolError(ValueError):
    """An inbound frame the server cannot act on.

    This is the only exception :func:`parse_frame` raises. ``request_id`` and
    ``renderer_id`` are filled in when the frame got far enough to name them,
    so the ``error`` reply reaches the right tab.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        renderer_id: str = "",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.renderer_id = renderer_id
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class Message:
    """One validated inbound message."""

    type: str
    renderer_id: str = ""
    request_id: str | None = None
    payload: Any = None
    raw: dict[str, Any] | None = None
    seq: int | None = None
    """The client's own number for this message, on a resumable session."""
    size: int = 0
    """About the memory it takes once parsed (``callback_request`` only, see
    :func:`parsed_size`): what keeping it costs."""
    path_resolved: bool = False
    """A ``get_props_response`` whose values are already read at the request's
    ``path`` (quartdash's page helper answers so); otherwise a renderer that
    ignores ``path`` sent the whole property."""


# --- parsing ----------------------------------------------------------------


def clip(value: Any) -> str:
    """A short quote of client data for an error message: never the whole of it."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > ECHO_LIMIT:
        text = text[:ECHO_LIMIT] + "..."
    return repr(text)


def parsed_size(data: str | bytes) -> int:
    """About the memory ``data`` (JSON) takes once parsed: nested containers
    cost far more than their two characters (a list is ~64 bytes, each item
    ~24 more), so ``[[[[...]]]]`` is charged ~32 times its length."""
    if isinstance(data, str):
        containers, items = data.count("[") + data.count("{"), data.count(",")
    else:
        containers, items = data.count(b"[") + data.count(b"{"), data.count(b",")
    return len(data) + 64 * containers + 24 * items


def utf8_size(data: str | bytes, limit: int) -> int:
    """Size of a frame in bytes as sent, counted only as far as needed to compare
    with ``limit`` (a text frame arrives decoded: one character is 1-4 bytes)."""
    if isinstance(data, bytes):
        return len(data)
    chars = len(data)
    if chars > limit or chars * 4 <= limit:
        return chars  # over for sure, or within for sure, whatever the characters
    return len(data.encode("utf-8", "surrogatepass"))


def parse_frame(data: str | bytes, *, max_batch: int) -> tuple[list[Message], list[ProtocolError]]:
    """Parse one text frame into messages.

    Returns the valid messages and an error for each invalid one, so a batch
    with one bad message still delivers the others. A frame that is not JSON,
    not an object or array, or an over-long batch is one :class:`ProtocolError`
    raised for the whole frame.
    """
    try:
        decoded = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # orjson's message names a position, never the data (nesting deeper
        # than 1024 levels is refused here too, without recursion).
        raise ProtocolError(ErrorCode.BAD_JSON, f"frame is not valid JSON: {exc}") from None
    if isinstance(decoded, dict):
        items: list[Any] = [decoded]
    elif isinstance(decoded, list):
        if len(decoded) > max_batch:
            raise ProtocolError(
                ErrorCode.BATCH_TOO_LARGE,
                f"batch of {len(decoded)} messages exceeds the limit of {max_batch}",
            )
        items = decoded
    else:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, "a frame must be a JSON object or an array of objects"
        )
    messages: list[Message] = []
    errors: list[ProtocolError] = []
    for item in items:
        try:
            message = parse_message(item)
        except ProtocolError as exc:
            errors.append(exc)
            continue
        if message.type == CALLBACK_REQUEST:
            # A request is kept while its callback runs: measure it once here.
            text = data if len(items) == 1 else orjson.dumps(item)
            message = dataclasses.replace(message, size=parsed_size(text))
        messages.append(message)
    return messages, errors


def _optional_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"'{key}' must be a string")
    if len(value) > MAX_ID_LENGTH:
        raise ProtocolError(ErrorCode.BAD_MESSAGE,
                            f"'{key}' is longer than {MAX_ID_LENGTH} characters")
    return value


def parse_message(obj: Any) -> Message:
    """Validate one decoded message object."""
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a message must be a JSON object")
    msg_type = obj.get("type")
    if not isinstance(msg_type, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a message needs a string 'type'")
    if msg_type not in INBOUND_TYPES:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"unknown message type {clip(msg_type)}")
    if msg_type == HEARTBEAT:
        return Message(HEARTBEAT)
    if msg_type in (HELLO, RESUME, ACK):
        return _control_message(msg_type, obj)

    seq = _optional_seq(obj)
    renderer_id = _optional_str(obj, "rendererId") or ""
    request_id = _optional_str(obj, "requestId")
    if msg_type in (RENDERER_JOINED, RENDERER_LEFT):
        if not renderer_id:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"'{msg_type}' needs a 'rendererId'")
        return Message(msg_type, renderer_id, seq=seq)

    if not request_id:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, f"'{msg_type}' needs a 'requestId'", renderer_id=renderer_id
        )
    payload = obj.get("payload")
    if msg_type == CALLBACK_REQUEST:
        _check_callback_payload(payload, renderer_id, request_id)
    elif payload is not None and not isinstance(payload, dict):
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            "'get_props_response' payload must be an object",
            renderer_id=renderer_id,
            request_id=request_id,
        )
    resolved = msg_type == GET_PROPS_RESPONSE and obj.get("pathResolved") is True
    return Message(msg_type, renderer_id, request_id, payload or {}, obj, seq,
                   path_resolved=resolved)


def check_callback_payload(payload: Any) -> None:
    """Validate the shape of a callback request body (WebSocket payload or HTTP body)."""
    _check_callback_payload(payload, "", "")


def _optional_seq(obj: dict[str, Any]) -> int | None:
    seq = obj.get("seq")
    if seq is None:
        return None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or seq >= 2**53:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "'seq' must be a whole number")
    return seq


def _control_message(msg_type: str, obj: dict[str, Any]) -> Message:
    """``hello``, ``resume`` and ``ack``: a payload of known, bounded fields."""
    payload = obj.get("payload")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"'{msg_type}' payload must be an object")
    if msg_type == RESUME:
        token = payload.get("token")
        if not isinstance(token, str) or len(token) > 2 * TOKEN_LENGTH:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "'resume' needs a string 'token'")
        return Message(RESUME, payload={"token": token,
                                        "lastSeq": _seq_field(payload, "lastSeq")})
    if msg_type == ACK:
        return Message(ACK, payload={"seq": _seq_field(payload, "seq")})
    return Message(HELLO, payload={"resume": bool(payload.get("resume"))})


def _seq_field(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= 2**53:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"'{key}' must be a whole number")
    return value


def _check_callback_payload(payload: Any, renderer_id: str, request_id: str) -> None:
    def fail(why: str) -> ProtocolError:
        return ProtocolError(
            ErrorCode.BAD_MESSAGE,
            f"callback_request payload {why}",
            renderer_id=renderer_id,
            request_id=request_id,
        )

    if not isinstance(payload, dict):
        raise fail("must be an object")
    if not isinstance(payload.get("output"), str):
        raise fail("needs a string 'output' (the callback id)")
    for key in ("inputs", "state", "outputs"):
        value = payload.get(key, [])
        if key == "outputs" and isinstance(value, dict):
            value = [value]  # a single Output is sent as one object
        if not isinstance(value, list):
            raise fail(f"field '{key}' must be a list")
        # Each entry names a component property ({"id", "property"[, "value"]}),
        # or is a list of them (pattern-matching ALL / ALLSMALLER). Plain
        # loops: this runs on every callback request.
        for entry in value:
            for item in entry if isinstance(entry, list) else (entry,):
                if not _is_dependency(item):
                    raise fail(f"field '{key}' holds an entry without a string or object "
                               "'id' and a string 'property'")
    changed = payload.get("changedPropIds", [])
    if not isinstance(changed, list):
        raise fail("field 'changedPropIds' must be a list of strings")
    for prop_id in changed:
        if not isinstance(prop_id, str):
            raise fail("field 'changedPropIds' must be a list of strings")


_ID_VALUES: Final = (str, int, float, bool)


def _is_dependency(entry: Any) -> bool:
    if not (isinstance(entry, dict) and isinstance(entry.get("property"), str)):
        return False
    component_id = entry.get("id")
    # A pattern-matching id is flat: string keys, scalar values (nothing to
    # recurse into, however deep a hostile client nests it).
    return isinstance(component_id, str) or (
        isinstance(component_id, dict)
        and all(isinstance(v, _ID_VALUES) for v in component_id.values()))


def retrigger_key(payload: dict[str, Any]) -> str:
    """What makes two requests "the same callback again" for one tab: the
    callback and the concrete ids of its outputs (a pattern-matching callback
    fired from row 1 and from row 2 is two callbacks, as in dash-renderer),
    or, for a callback without outputs, of its inputs."""
    def refs(entries: Any) -> list[Any]:
        flat: list[Any] = []
        for entry in entries if isinstance(entries, list) else [entries]:
            for item in entry if isinstance(entry, list) else [entry]:
                if isinstance(item, dict):
                    flat.append([item.get("id"), item.get("property")])
        return flat

    ids = refs(payload.get("outputs") or []) or refs(payload.get("inputs") or [])
    return str(payload.get("output")) + "|" + orjson.dumps(
        ids, option=orjson.OPT_SORT_KEYS).decode()


# --- encoding ---------------------------------------------------------------

_OPTIONS: Final = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(obj: Any) -> Any:
    # Dash components, Patch and plotly figures all know how to become JSON.
    to_plotly_json = getattr(obj, "to_plotly_json", None)
    if to_plotly_json is not None:
        return to_plotly_json()
    tolist = getattr(obj, "tolist", None)  # numpy arrays orjson cannot take, pandas
    if tolist is not None:
        return tolist()
    item = getattr(obj, "item", None)  # numpy scalars
    if item is not None:
        return item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> bytes:
    """Encode to JSON bytes: orjson fast path, Dash's own encoder as fallback."""
    try:
        data = orjson.dumps(obj, default=_default, option=_OPTIONS)
        # orjson's bytes keep the capacity they were built in (4 KB and up,
        # ijl/orjson#483): a copy holds just the frame, so a waiting frame
        # costs what the byte budgets count.
        return bytes(memoryview(data))
    except TypeError:
        # Rare values (pandas objects, dates inside components...) take the
        # slow but complete plotly encoder, the one Dash itself uses.
        from plotly.io.json import to_json_plotly

        return str(to_json_plotly(obj)).encode()


def set_props_frame(renderer_id: str, component_id: str, props: dict[str, Any]) -> bytes:
    return dumps(
        {
            "type": SET_PROPS,
            "rendererId": renderer_id,
            "payload": {"componentId": component_id, "props": props},
        }
    )


def set_props_payload(component_id: str, props: dict[str, Any]) -> bytes:
    """The ``payload`` of a ``set_props`` message, encoded once for many renderers (broadcast)."""
    return dumps({"componentId": component_id, "props": props})


def set_props_frame_from_payload(renderer_id: str, payload: bytes) -> bytes:
    """A ``set_props`` frame around a ready payload: the payload is spliced, not re-encoded."""
    head = dumps({"type": SET_PROPS, "rendererId": renderer_id})
    return head[:-1] + b',"payload":' + payload + b"}"


def get_props_request_frame(
    renderer_id: str, request_id: str, component_id: str, properties: list[str],
    path: list[str | int] | None = None,
) -> bytes:
    """Dash's ``get_props_request``; ``path`` (Dash 4.5's partial read) only
    when given, as Dash 4.5 sends it."""
    payload: dict[str, Any] = {"componentId": component_id, "properties": properties}
    if path is not None:
        payload["path"] = path
    return dumps(
        {
            "type": GET_PROPS_REQUEST,
            "rendererId": renderer_id,
            "requestId": request_id,
            "payload": payload,
        }
    )


def check_prop_path(path: Any) -> list[str | int] | None:
    """Validate a ``get_prop(path=...)`` the way Dash 4.5 does, before anything
    is sent: a list (or None) of strings and JavaScript-safe integers.

    Raises ``TypeError`` for anything else and ``ValueError`` for an integer
    a browser cannot hold exactly.
    """
    if path is None:
        return None
    if not isinstance(path, list):
        raise TypeError(f"path must be a list of str and int, not {type(path).__name__}")
    for item in path:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise TypeError(f"path items must be str or int, not {type(item).__name__}")
        if isinstance(item, int) and abs(item) > MAX_SAFE_INTEGER:
            raise ValueError(f"path index {item} is not a safe JavaScript integer")
    return list(path)


_MISSING: Final = object()


def resolve_prop_path(value: Any, path: list[str | int] | None) -> Any:
    """What ``path`` selects inside ``value``, by Dash 4.5's rules (its
    ``resolvePropPath``): a string selects a key of an object, an integer an
    item of an array (negative counts from the end); anything else, a missing
    key or an index out of range is None. An empty path selects the whole value.
    """
    current: Any = value
    for step in path or ():
        if isinstance(step, str) and isinstance(current, dict):
            current = current.get(step, _MISSING)
        elif (isinstance(step, int) and not isinstance(step, bool)
              and isinstance(current, list)):
            index = step + len(current) if step < 0 else step
            current = current[index] if 0 <= index < len(current) else _MISSING
        else:
            current = _MISSING
        if current is _MISSING:
            return None
    return current


def callback_response_frame(renderer_id: str, request_id: str, payload: dict[str, Any]) -> bytes:
    return dumps(
        {
            "type": CALLBACK_RESPONSE,
            "rendererId": renderer_id,
            "requestId": request_id,
            "payload": payload,
        }
    )


def prevent_update_frame(renderer_id: str, request_id: str) -> bytes:
    """The callback ran (or was superseded) and updates nothing."""
    return callback_response_frame(renderer_id, request_id, {"status": "prevent_update"})


def callback_error_frame(renderer_id: str, request_id: str, message: str,
                         code: ErrorCode | None = None) -> bytes:
    """The callback failed, or was refused (``code`` says why it never ran)."""
    payload: dict[str, Any] = {"status": "error", "message": message}
    if code is not None:
        payload["code"] = code.value
    return callback_response_frame(renderer_id, request_id, payload)


def callback_ok_frame(renderer_id: str, request_id: str, data_json: str | bytes) -> bytes:
    """A successful response whose ``data`` is already JSON (Dash's callback output).

    Splicing the ready JSON in avoids the parse-then-serialise round trip.
    """
    if isinstance(data_json, str):
        data_json = data_json.encode()
    head = dumps({"type": CALLBACK_RESPONSE, "rendererId": renderer_id, "requestId": request_id})
    return head[:-1] + b',"payload":{"status":"ok","data":' + data_json + b"}}"


def check_event_name(name: Any) -> str:
    """An event name as it may be sent: a non-empty string of bounded length."""
    if not isinstance(name, str) or not name:
        raise TypeError("an event name must be a non-empty string")
    if len(name) > MAX_EVENT_NAME:
        raise ValueError(f"an event name is at most {MAX_EVENT_NAME} characters")
    return name


def event_payload(name: str, data: Any) -> bytes:
    """The ``payload`` of an ``event`` message, encoded once (also for many tabs)."""
    return dumps({"name": name, "data": data})


def event_frame_from_payload(renderer_id: str, payload: bytes) -> bytes:
    """An ``event`` frame around a ready payload (spliced, not re-encoded)."""
    head = dumps({"type": EVENT, "rendererId": renderer_id})
    return head[:-1] + b',"payload":' + payload + b"}"


def events_lost_frame(renderer_id: str, count: int) -> bytes:
    """``count`` events to this tab did not fit the event budget (a running total)."""
    return dumps({"type": EVENTS_LOST, "rendererId": renderer_id,
                  "payload": {"count": count}})


def error_frame(error: ProtocolError | ErrorCode, message: str | None = None, **ids: Any) -> bytes:
    if isinstance(error, ProtocolError):
        code, message = error.code, error.message
        ids = {"renderer_id": error.renderer_id, "request_id": error.request_id, **ids}
    else:
        code = error
    msg: dict[str, Any] = {
        "type": ERROR,
        "rendererId": ids.get("renderer_id") or "",
        "payload": {"message": message or code.value, "code": code.value},
    }
    if ids.get("request_id"):
        msg["requestId"] = ids["request_id"]
    return dumps(msg)


def resume_request(data: str | bytes, limit: int) -> tuple[str, int] | None:
    """``(token, lastSeq)`` when ``data`` is a ``resume`` message (a connection's
    first); None for anything else, left to the session's own checks."""
    if utf8_size(data, limit) > min(limit, 4096):
        return None
    if ('"resume"' not in data) if isinstance(data, str) else (b'"resume"' not in data):
        return None
    try:
        messages, errors = parse_frame(data, max_batch=1)
    except ProtocolError:
        return None
    if errors or len(messages) != 1 or messages[0].type != RESUME:
        return None
    payload = messages[0].payload
    return payload["token"], payload["lastSeq"]


def with_seq(frame: bytes, seq: int) -> bytes:
    """A ready message frame (a JSON object) with its sequence number spliced in."""
    return b"%s,\"seq\":%d}" % (frame[:-1], seq)


def session_frame(token: str, resume_timeout: float) -> bytes:
    """This connection's session may be resumed with ``token`` within the window."""
    return dumps({"type": SESSION, "payload": {"token": token,
                                               "resumeTimeout": int(resume_timeout * 1000)}})


def resumed_frame(token: str, last_seq: int) -> bytes:
    """The session is back: ``token`` is the next one, ``lastSeq`` the last
    client message the server received (the client resends what followed)."""
    return dumps({"type": RESUMED, "payload": {"token": token, "lastSeq": last_seq}})


def session_lost_frame(reason: LostReason) -> bytes:
    """The session asked for could not be resumed: continuity is lost."""
    return dumps({"type": SESSION_LOST, "payload": {"reason": reason.value}})


def ack_frame(seq: int) -> bytes:
    """The server received every client message up to ``seq``."""
    return b'{"type":"ack","payload":{"seq":%d}}' % seq


MAX_BATCH_BYTES = 1_048_576
"""Bytes of messages joined into one outbound frame at most (a larger single
message goes alone): a slow client's whole backlog is never one frame, which
would be copied several times on its way to the socket."""


def batch(frames: list[bytes]) -> bytes:
    """Join ready frames into one array frame, without re-encoding them."""
    if len(frames) == 1:
        return frames[0]
    return b"[" + b",".join(frames) + b"]"


def batches(frames: list[bytes], limit: int = MAX_BATCH_BYTES) -> Iterator[bytes]:
    """:func:`batch` in pieces of about ``limit`` bytes at most, in order."""
    start, size = 0, 0
    for end, frame in enumerate(frames):
        if size and size + len(frame) > limit:
            yield batch(frames[start:end])
            start, size = end, 0
        size += len(frame) + 1
    if start < len(frames):
        yield batch(frames[start:])
