"""The GraphQL-over-HTTP view: spec-conformant requests and answers, persisted queries,
HTTP caching of GET answers, and the GraphiQL playground for browsers.

One request, in order: the method (GET or POST, else 405); a browser's GET without a query
gets the playground; the ``Accept`` header picks ``application/graphql-response+json`` or
``application/json`` (else 406); the parameters are read and type-checked (400); the
document comes from ``query`` or a persisted hash (:mod:`gateway.http.persisted`); it runs (GET
runs queries only: a mutation over GET is 405). A request error (the document did not parse,
validate or coerce its variables) is 400 under ``application/graphql-response+json`` and 200
under ``application/json``, as the spec asks; its body has ``errors`` and no ``data``. A
successful GET answer carries ``Cache-Control``, ``ETag`` and ``Vary``
(:mod:`gateway.http.conditional`).

A response-cache hit is answered from the raw request: the view remembers, per caller level
and exact request (the POST body, or the GET query string), which response-cache entry
answered it and the bytes that follow the data (``extensions.attribution``); the same request
again is the lookup of that entry and the bytes sent, with no parsing, validation or JSON
work. Authentication and rate limits have run before (:mod:`gateway.http.edge`); a document
by APQ hash is answered so only while the hash is still known.

WebSocket connections are left to strawberry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from gateway.graphql.execute import RequestContext, Runtime
from gateway.graphql.response_cache import CachedResult, encode_json
from gateway.graphql.schema import GatewaySchema
from gateway.http import playground
from gateway.http.auth import Caller
from gateway.http.conditional import (
    VARY,
    Freshness,
    cache_control,
    entity_tag,
    not_modified,
    register_ttls,
)
from gateway.http.persisted import APQ_PREFIX, PersistedQueries, Resolved
from gateway.http.protocol import (
    GRAPHQL_RESPONSE_JSON,
    GraphQLParams,
    RequestError,
    check_content_type,
    error_response,
    negotiate,
    read_body,
    read_params,
)

if TYPE_CHECKING:
    from gateway.http.config import Settings

__all__ = ["GatewayView", "view_routes"]

log = logging.getLogger("gateway.http")

# Room for variables beside the largest document the limits accept.
_BODY_ALLOWANCE: Final = 1_000_000

_ALLOWED_OPERATIONS: Final = {
    "GET": frozenset({OperationType.QUERY}),
    "POST": frozenset({OperationType.QUERY, OperationType.MUTATION}),
}

# Requests remembered for answering again from the response cache, and the longest one.
_ANSWERS: Final = 2048
_ANSWER_BYTES: Final = 8192
# Content-Type values of POST requests remembered as accepted (the exact header values).
_CONTENT_TYPES: Final = 16

_DATA: Final = b'{"data":'


@dataclass(slots=True)
class _Answer:
    """What answers one raw request again: its response-cache entry and the bytes after the
    data; for a GET, its ``max-age`` and the ETags of the bytes last sent."""

    key: str
    tail: bytes
    seconds: int
    apq: str | None = None  # the APQ hash it was sent by, which must still be known
    learn: tuple[str, str] | None = None  # (hash, document) to remember again
    encoded: bytes = b""
    etags: dict[str, str] = field(default_factory=dict)


def _replay(body: bytes) -> Receive:
    """A ``receive`` that gives ``body`` again (it was read already)."""
    message: Message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> Message:
        return message

    return receive


class _Prepared(Response):
    """A 200 whose headers are ready (what :class:`Response` would have made of them)."""

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = raw_headers


class GatewayView(GraphQL[RequestContext, None]):
    """strawberry's ASGI view with our request context and our HTTP handling."""

    def __init__(self, schema: GatewaySchema, runtime: Runtime, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            allow_queries_via_get=True,
            # Only graphql-transport-ws: the legacy protocol lets clients skip the handshake.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        )
        self.runtime = runtime
        self.settings = settings
        self.graphql_schema = schema._schema
        self.persisted = PersistedQueries(settings.http, runtime.cache)
        served = _served_registers(schema, runtime)
        self.freshness = Freshness(
            self.graphql_schema,
            register_ttls(r for r in runtime.registers.values() if r.name in served),
            settings.http.max_age,
        )
        self.max_body = settings.limits.max_document_bytes + _BODY_ALLOWANCE
        self.responses = schema.response_cache
        self.answers: dict[tuple[str, int, bytes], _Answer] = {}
        self.json_types: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        response = await self.respond(Request(scope=scope, receive=receive))
        await response(scope, receive, send)

    async def get_context(self, request: Any, response: Any) -> RequestContext:
        caller = _caller(request.scope, self.settings)
        return RequestContext(runtime=self.runtime, level=caller.level, caller=caller.name)

    # -- one HTTP request ------------------------------------------------------------------

    async def respond(self, request: Request) -> Response:
        """The answer to one HTTP request on this endpoint."""
        if request.method not in _ALLOWED_OPERATIONS:
            return error_response(
                405,
                "GraphQL is served over GET and POST only",
                "METHOD_NOT_ALLOWED",
                headers={"allow": "GET, POST"},
            )
        if self._wants_playground(request):
            return playground.page(request.url.path, self.graphql_schema, self.runtime.registers)
        try:
            media_type = negotiate(request.headers.get("accept"))
        except RequestError as exc:
            return exc.response()
        raw = None
        try:
            if self.responses is not None:
                raw, sent = await self._raw(request)
                if raw is not None:
                    again = await self._again(request, media_type, raw)
                    if again is not None:
                        return again
                if sent is not None:  # read here: given again to the parameters
                    request = Request(request.scope, _replay(sent))
            params = await read_params(request, self.max_body)
            resolved = await self.persisted.resolve(params.query, params.extensions)
            result = await self._execute(request, params, resolved.document)
        except RequestError as exc:
            return exc.response(media_type)
        if resolved.learn is not None and result.data is not None:
            await self.persisted.learn(resolved.learn, resolved.document)
        body = None
        if isinstance(result, CachedResult):
            body = result.body()
            if raw is not None and result.key is not None:
                self._remember(request, raw, result, body, params, resolved)
        return self._answer(request, media_type, result, resolved.document, body)

    # -- answering a raw request again from the response cache ----------------------------

    async def _raw(self, request: Request) -> tuple[tuple[str, int, bytes] | None, bytes | None]:
        """The raw request as the memo of answers knows it (None if it cannot), and the
        body if it was read here."""
        level = _caller(request.scope, self.settings).level
        if request.method == "GET":
            query_string: bytes = request.scope.get("query_string", b"")
            if len(query_string) > _ANSWER_BYTES:
                return None, None
            return ("GET", level, query_string), None
        content_type = request.headers.get("content-type")
        if content_type not in self.json_types:
            check_content_type(content_type)  # refused here as the parameters would be
            if len(self.json_types) < _CONTENT_TYPES:
                self.json_types.add(content_type)  # type: ignore[arg-type]
        body = await read_body(request, self.max_body)
        if len(body) > _ANSWER_BYTES:
            return None, body
        return ("POST", level, body), body

    async def _again(
        self, request: Request, media_type: str, raw: tuple[str, int, bytes]
    ) -> Response | None:
        """The answer to ``raw`` from the response cache, if it is remembered and still there."""
        answer = self.answers.get(raw)
        if answer is None:
            return None
        if answer.apq is not None:
            known = await self.persisted.cache.get(APQ_PREFIX + answer.apq)
            if not isinstance(known, str):
                return None  # the hash is forgotten: answered as PERSISTED_QUERY_NOT_FOUND
        assert self.responses is not None
        encoded = await self.responses.lookup(answer.key)
        if encoded is None:
            return None
        if answer.learn is not None:
            await self.persisted.learn(*answer.learn)
        body = _DATA + encoded + answer.tail
        if request.method != "GET":
            return _Prepared(body, _content(body, media_type))
        if encoded is not answer.encoded:
            answer.encoded, answer.etags = encoded, {}
        etag = answer.etags.get(media_type)
        if etag is None:
            etag = answer.etags[media_type] = entity_tag(media_type, body)
        public = _caller(request.scope, self.settings).method == "anonymous"
        control = cache_control(public, answer.seconds)
        if not_modified(request.headers.get("if-none-match"), etag):
            headers = {"vary": VARY, "cache-control": control, "etag": etag}
            return Response(status_code=304, headers=headers)
        raw_headers = [
            (b"vary", VARY.encode("latin-1")),
            (b"cache-control", control.encode("latin-1")),
            (b"etag", etag.encode("latin-1")),
            *_content(body, media_type),
        ]
        return _Prepared(body, raw_headers)

    def _remember(
        self,
        request: Request,
        raw: tuple[str, int, bytes],
        result: CachedResult,
        body: bytes,
        params: GraphQLParams,
        resolved: Resolved,
    ) -> None:
        """Remember which response-cache entry answers ``raw`` (it has just answered it)."""
        assert result.key is not None
        apq = None
        if params.query is None:  # sent by its APQ hash alone (known, else it had not run)
            digest = str((params.extensions or {})["persistedQuery"]["sha256Hash"]).lower()
            apq = None if digest in self.persisted.allowed else digest
        learn = (resolved.learn, resolved.document) if resolved.learn is not None else None
        seconds = self.freshness.seconds(resolved.document) if request.method == "GET" else 0
        tail = body[len(_DATA) + len(result.encoded) :]
        if len(self.answers) >= _ANSWERS:
            del self.answers[next(iter(self.answers))]
        self.answers[raw] = _Answer(result.key, tail, seconds, apq, learn)

    def _wants_playground(self, request: Request) -> bool:
        if not self.settings.graphiql or request.method != "GET":
            return False
        if self.answers:
            level = _caller(request.scope, self.settings).level
            if ("GET", level, request.scope.get("query_string", b"")) in self.answers:
                return False  # it had a query (or a hash) when it was answered
        return (
            "query" not in request.query_params
            and "extensions" not in request.query_params
            and "text/html" in request.headers.get("accept", "")
        )

    async def _execute(
        self, request: Request, params: GraphQLParams, document: str
    ) -> ExecutionResult:
        context = await self.get_context(request, None)
        try:
            return await self.schema.execute(
                document,
                variable_values=params.variables,
                context_value=context,
                operation_name=params.operation_name,
                allowed_operation_types=_ALLOWED_OPERATIONS[request.method],
                operation_extensions=params.extensions,
            )
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.MUTATION:
                raise RequestError(
                    405,
                    "mutations cannot be sent with GET; use POST",
                    "METHOD_NOT_ALLOWED",
                    {"allow": "POST"},
                ) from None
            raise RequestError(
                400, exc.as_http_error_reason(request.method), "OPERATION_NOT_SUPPORTED"
            ) from None
        except CannotGetOperationTypeError as exc:
            raise RequestError(
                400, exc.as_http_error_reason(), "OPERATION_RESOLUTION_FAILURE", graphql=True
            ) from None
        except MissingQueryError:
            raise RequestError(400, "the GraphQL document is empty") from None

    def _answer(
        self,
        request: Request,
        media_type: str,
        result: ExecutionResult,
        document: str,
        cached: bytes | None = None,
    ) -> Response:
        if isinstance(result, CachedResult):
            # A response-cache hit: the answer's bytes as they were cached.
            ran, body = True, cached if cached is not None else result.body()
        else:
            # No data: the document never ran (it did not parse, validate or coerce).
            ran, body = result.data is not None, encode_json(_payload(result))
        status = 200 if ran or media_type != GRAPHQL_RESPONSE_JSON else 400
        if status == 200 and request.method != "GET":
            return _Prepared(body, _content(body, media_type))
        headers: dict[str, str] = {}
        if request.method == "GET":
            headers["vary"] = VARY
            if result.errors or not ran:
                headers["cache-control"] = "no-store"
            else:
                public = _caller(request.scope, self.settings).method == "anonymous"
                seconds = self.freshness.seconds(document)
                headers["cache-control"] = cache_control(public, seconds)
                headers["etag"] = entity_tag(media_type, body)
                if not_modified(request.headers.get("if-none-match"), headers["etag"]):
                    return Response(status_code=304, headers=headers)
        return Response(body, status_code=status, headers=headers, media_type=media_type)


def _content(body: bytes, media_type: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-length", str(len(body)).encode("latin-1")),
        (b"content-type", media_type.encode("latin-1")),
    ]


def view_routes(settings: Settings) -> list[BaseRoute]:
    """Routes the view needs besides the GraphQL endpoints: the playground's files."""
    return playground.routes() if settings.graphiql else []


def _caller(scope: Scope, settings: Settings) -> Caller:
    caller: Caller | None = scope.get("caller")
    return caller or Caller("anonymous", settings.auth.anonymous_level, "anonymous")


def _served_registers(schema: GatewaySchema, runtime: Runtime) -> set[str]:
    query = schema._schema.query_type
    roots = query.fields if query is not None else {}
    return {
        register.name
        for register in runtime.registers.values()
        if any(e.graphql_name in roots for e in register.datamodel.entities.values())
    }


def _payload(result: ExecutionResult) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.data is not None:
        payload["data"] = result.data
    if result.extensions:
        payload["extensions"] = result.extensions
    return payload
