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
WebSocket connections are left to strawberry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send
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
from gateway.http.persisted import PersistedQueries
from gateway.http.protocol import (
    GRAPHQL_RESPONSE_JSON,
    GraphQLParams,
    RequestError,
    error_response,
    negotiate,
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
        try:
            params = await read_params(request, self.max_body)
            resolved = await self.persisted.resolve(params.query, params.extensions)
            result = await self._execute(request, params, resolved.document)
        except RequestError as exc:
            return exc.response(media_type)
        if resolved.learn is not None and result.data is not None:
            await self.persisted.learn(resolved.learn, resolved.document)
        return self._answer(request, media_type, result, resolved.document)

    def _wants_playground(self, request: Request) -> bool:
        return (
            self.settings.graphiql
            and request.method == "GET"
            and "query" not in request.query_params
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
        self, request: Request, media_type: str, result: ExecutionResult, document: str
    ) -> Response:
        if isinstance(result, CachedResult):
            # A response-cache hit: the answer's bytes as they were cached.
            ran, body = True, result.body()
        else:
            # No data: the document never ran (it did not parse, validate or coerce).
            ran, body = result.data is not None, encode_json(_payload(result))
        status = 200 if ran or media_type != GRAPHQL_RESPONSE_JSON else 400
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
