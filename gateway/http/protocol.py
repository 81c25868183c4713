"""Reading a GraphQL-over-HTTP request: media types, parameters, and request errors.

Follows the GraphQL-over-HTTP specification: ``application/graphql-response+json`` and
``application/json`` responses chosen by ``Accept``; parameters from the query string (GET)
or a JSON object body (POST); a malformed request is answered with a 4xx status and a
GraphQL-shaped error body, never with plain text.

Over WebSockets (``graphql-transport-ws``), :class:`CredentialsHandler` reads the
credentials a client sends in its ``connection_init`` payload (:mod:`gateway.http.auth`)
before the connection is acknowledged: the connection then runs at that caller's level, and
refused credentials close it with the refusal's code and reason, never at a lower level.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage

from gateway.graphql.execute import RequestContext
from gateway.http.auth import INIT_AUTH, ConnectionAuth, ConnectionRefused

__all__ = [
    "GRAPHQL_RESPONSE_JSON",
    "JSON",
    "CredentialsHandler",
    "GraphQLParams",
    "RequestError",
    "check_content_type",
    "error_response",
    "negotiate",
    "read_body",
    "read_params",
]

GRAPHQL_RESPONSE_JSON: Final = "application/graphql-response+json"
JSON: Final = "application/json"

_PARAMETERS: Final = ("query", "operationName", "variables", "extensions")


@dataclass(frozen=True, slots=True)
class GraphQLParams:
    """The four request parameters of the spec, type-checked."""

    query: str | None = None
    operation_name: str | None = None
    variables: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None


@dataclass(eq=False, slots=True)
class RequestError(Exception):
    """A request the gateway cannot take: answered with ``status`` and a GraphQL error body."""

    status: int
    message: str
    code: str = "BAD_REQUEST"
    headers: dict[str, str] = field(default_factory=dict)
    # A GraphQL request error (the document cannot run) rather than a broken HTTP request:
    # answered 200 under application/json, as the spec asks for that legacy media type.
    graphql: bool = False

    def __str__(self) -> str:
        return self.message

    def response(self, media_type: str = JSON) -> Response:
        """The error as an HTTP response in ``media_type``."""
        status = 200 if self.graphql and media_type == JSON else self.status
        return error_response(status, self.message, self.code, media_type, self.headers)


def error_response(
    status: int,
    message: str,
    code: str,
    media_type: str = JSON,
    headers: dict[str, str] | None = None,
) -> Response:
    """A GraphQL-shaped error body (no ``data``: the request never executed)."""
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(
        json.dumps(body, separators=(",", ":")).encode("utf-8"),
        status_code=status,
        media_type=media_type,
        headers={"cache-control": "no-store", **(headers or {})},
    )


# --- Accept ------------------------------------------------------------------------------


def negotiate(accept: str | None) -> str:
    """The response media type for an ``Accept`` header (406 when none fits).

    A missing header means ``application/json``. Wildcards (``*/*``, ``application/*``)
    also mean ``application/json``, as the spec asks for the legacy type; of two types of
    equal preference the newer ``application/graphql-response+json`` wins.
    """
    if accept is None or not accept.strip():
        return JSON
    # Clients send few distinct Accept headers: each short one is parsed once (a refusal is
    # not remembered; a long one, bounding the memo's memory, is parsed every time).
    return _negotiated(accept) if len(accept) <= _MEMO_ACCEPT else _negotiate(accept)


_MEMO_ACCEPT: Final = 256


def _negotiate(accept: str) -> str:
    best: tuple[float, int, str] | None = None
    for item in accept.split(","):
        media, quality = _media_range(item)
        if quality <= 0:
            continue
        if media == GRAPHQL_RESPONSE_JSON:
            candidate = (quality, 2, GRAPHQL_RESPONSE_JSON)
        elif media == JSON:
            candidate = (quality, 1, JSON)
        elif media in ("*/*", "application/*"):
            candidate = (quality, 0, JSON)
        else:
            continue
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        raise RequestError(
            406,
            f"cannot answer in any of the accepted media types; "
            f"accept {GRAPHQL_RESPONSE_JSON} or {JSON}",
            "NOT_ACCEPTABLE",
        )
    return best[2]


_negotiated = lru_cache(maxsize=256)(_negotiate)


def _media_range(item: str) -> tuple[str, float]:
    media, *params = (part.strip() for part in item.split(";"))
    quality = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                quality = 0.0
    return media.lower(), quality


# --- parameters --------------------------------------------------------------------------


async def read_params(request: Request, max_body: int) -> GraphQLParams:
    """The parameters of a GET (query string) or POST (JSON body) request."""
    if request.method == "GET":
        raw = _query_string_params(request)
    else:
        raw = await _body_params(request, max_body)
    return _checked(raw)


def _query_string_params(request: Request) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name in _PARAMETERS:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise RequestError(400, f"the parameter {name!r} is given more than once")
        if not values:
            continue
        value: Any = values[0]
        if name in ("variables", "extensions"):
            # An empty value is the same as an absent one.
            value = _json(value, f"the {name!r} parameter") if value else None
        raw[name] = value
    return raw


async def _body_params(request: Request, max_body: int) -> dict[str, Any]:
    check_content_type(request.headers.get("content-type"))
    body = await read_body(request, max_body)
    if not body.strip():
        raise RequestError(400, "the request body is empty; send a JSON object with 'query'")
    data = _json(body, "the request body")
    if isinstance(data, list):
        raise RequestError(400, "batched requests are not supported; send one JSON object")
    if not isinstance(data, dict):
        raise RequestError(400, "the request body must be a JSON object")
    return data


def check_content_type(header: str | None) -> None:
    if header is None:
        raise RequestError(
            415, f"a POST request needs the header 'Content-Type: {JSON}'", "UNSUPPORTED_MEDIA_TYPE"
        )
    media, *params = (part.strip() for part in header.split(";"))
    if media.lower() != JSON:
        raise RequestError(
            415, f"unsupported content type {media!r}; send {JSON}", "UNSUPPORTED_MEDIA_TYPE"
        )
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise RequestError(
                415, "only UTF-8 encoded request bodies are accepted", "UNSUPPORTED_MEDIA_TYPE"
            )


async def read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    413, f"the request body exceeds {limit} bytes", "PAYLOAD_TOO_LARGE"
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestError(400, "the client went away while sending the body") from None
    return b"".join(chunks)


# 19 digits in a row may be an integer beyond 64 bits, which orjson reads as a float.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def _json(text: str | bytes, what: str) -> Any:
    """``json.loads``' answer, by orjson where it gives the same (no integer beyond 64 bits;
    what orjson refuses — NaN, lone surrogates, ``1e400`` — is the standard library's)."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _LONG_DIGITS.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise RequestError(400, f"{what} is not valid JSON") from None


def _checked(raw: dict[str, Any]) -> GraphQLParams:
    query = raw.get("query")
    if query is not None and not isinstance(query, str):
        raise RequestError(400, "'query' must be a string")
    operation_name = raw.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError(400, "'operationName' must be a string or null")
    variables = raw.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, "'variables' must be a JSON object or null")
    extensions = raw.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestError(400, "'extensions' must be a JSON object or null")
    return GraphQLParams(query, operation_name, variables, extensions)


# --- WebSockets --------------------------------------------------------------------------


class CredentialsHandler(BaseGraphQLTransportWSHandler[RequestContext, None]):
    """strawberry's ``graphql-transport-ws`` handler, authenticating ``connection_init``."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload")
        first = not self.connection_init_received and not self.connection_timed_out
        if first and isinstance(payload, dict):
            try:
                self._authenticate(payload)
            except ConnectionRefused as exc:
                self.connection_init_received = True
                if self.connection_init_timeout_task:
                    self.connection_init_timeout_task.cancel()
                await self.websocket.close(code=exc.code, reason=exc.reason)
                return
        await super().handle_connection_init(message)

    def _authenticate(self, payload: dict[str, Any]) -> None:
        socket: WebSocket | None = getattr(self.websocket, "ws", None)
        auth: ConnectionAuth | None = socket.scope.get(INIT_AUTH) if socket is not None else None
        if auth is None:
            return
        caller = auth.caller_for(payload)
        self.context.level = caller.level
        self.context.caller = caller.name
