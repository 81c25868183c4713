"""The request pipeline of every GraphQL operation, in the order it runs.

1. **Admit** the document: size, tokens, variables (:mod:`gateway.graphql.limits`), before any
   parsing.
2. **Response cache** (:mod:`gateway.graphql.response_cache`): the same document, variables
   and level answered again from the cache.
3. **Estimate** the operation (linear in the document, with what the gateway has observed of
   the upstreams) and refuse it over the caller's cost budget; otherwise a **meter** that
   execution charges as it goes (:mod:`gateway.graphql.demand`).
4. **Execute** under the caller's upstream-request budget
   (:mod:`gateway.sources.upstream_budget`): the one-pass path (:mod:`gateway.graphql.fastpath`)
   when it can answer the document, else strawberry field by field (resolvers in
   :mod:`gateway.graphql.execute`). Both paths check access through the same
   :class:`gateway.graphql.execute.Binding`.
5. **Answer**: a budget's refusal replaces the data; ``FORBIDDEN`` errors once per selection;
   ``extensions.cost`` when asked for; the answer kept in the response cache;
   ``extensions.attribution`` for the registers whose terms require it
   (:mod:`gateway.graphql.attribution`); a document that did not parse or validate gets
   hints from the upstreams' names to the GraphQL names (:mod:`gateway.graphql.hints`).

Subscriptions (:meth:`GatewaySchema.stream`) pass stages 1 and 3 before their first event.
"""

from __future__ import annotations

import functools
import logging
import types
from collections.abc import AsyncIterator, Mapping
from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError, parse
from strawberry.types.execution import ExecutionResult, PreExecutionError

from gateway.graphql.attribution import credited, credits
from gateway.graphql.demand import Knowledge, Meter
from gateway.graphql.execute import Binding, RequestContext
from gateway.graphql.fastpath import FastPath, StepAside
from gateway.graphql.hints import with_hints
from gateway.graphql.limits import (
    LimitSettings,
    QueryMeasure,
    check_document,
    check_variables,
    measure,
    verdict,
)
from gateway.graphql.response_cache import ResponseCache
from gateway.sources import upstream_budget
from gateway.sources.upstream_budget import Budget

__all__ = ["GatewaySchema", "collapse_denials", "parse_once"]

log = logging.getLogger("gateway.graphql.schema")

DOCUMENT_CACHE = 512


@functools.lru_cache(maxsize=DOCUMENT_CACHE)
def parse_once(query: str, parse_options: tuple[tuple[str, Any], ...]) -> DocumentNode:
    return parse(query, **dict(parse_options))


class GatewaySchema(strawberry.Schema):
    """A strawberry schema that logs caller mistakes quietly and real faults loudly, and
    refuses over-long documents before parsing them."""

    limit_settings: LimitSettings | None = None
    response_cache: ResponseCache | None = None
    fast_path: FastPath | None = None
    bindings_by_type: Mapping[str, Binding] = types.MappingProxyType({})

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """The request pipeline, stage by stage: admit the document → answer from the
        response cache → estimate and meter → execute (one pass, else field by field) under
        the upstream budget → the answer (refusals, denials, cost) → keep it in the cache."""
        refusal = self._admit(query, variable_values)
        if refusal is not None:
            return refusal
        want_cost = _wants_cost(kwargs.get("operation_extensions"))
        key = None
        if query is not None and not want_cost:
            key, hit = await self._cached(query, variable_values, operation_name, context_value)
            if hit is not None:
                return credited(hit, credits(self._schema, self.bindings_by_type, query))
        metered = self._meter(query, variable_values, context_value, operation_name)
        if isinstance(metered, ExecutionResult):
            return metered
        meter = metered
        if isinstance(context_value, RequestContext):
            context_value.defer_denial_log = True
        allowance = None
        if self.limit_settings is not None:
            allowance = self.limit_settings.upstream_budget(getattr(context_value, "level", 0))
        with upstream_budget.scope(allowance) as upstream:
            try:
                result = await self._fast(query, variable_values, context_value, operation_name)
                if result is None:
                    result = await super().execute(
                        query,
                        variable_values,
                        context_value,
                        root_value,
                        operation_name,
                        *args,
                        **kwargs,
                    )
            finally:
                if isinstance(context_value, RequestContext):
                    context_value.log_denials()
        result = self._answer(result, meter, upstream, want_cost)
        # Kept in the cache without it: extensions.attribution is the document's, not the data's.
        owed = credits(self._schema, self.bindings_by_type, query)
        if key is not None and self.response_cache is not None:
            kept = await self.response_cache.store(key, result, context_value)
            if kept is not None:
                # the same answer, encoded once for the cache and the response
                return credited(kept, owed)
        return credited(result, owed)

    def _admit(self, query: str | None, variables: Any) -> ExecutionResult | None:
        """Stage 1: size, tokens and variables, before the document is parsed."""
        if query is None or self.limit_settings is None:
            return None
        error = _document_refusal(query, variables, self.limit_settings)
        if error is None:
            return None
        self.process_errors([error])
        return ExecutionResult(data=None, errors=[error])

    async def _cached(
        self, query: str, variables: Any, operation_name: str | None, context: Any
    ) -> tuple[str | None, ExecutionResult | None]:
        """Stage 2: the response cache's key for this request, and its answer if it has one."""
        cache = self.response_cache
        if cache is None:
            return None, None
        key = cache.key(query, variables, operation_name, getattr(context, "level", 0))
        return key, await cache.get(key)

    def _meter(
        self, query: str | None, variables: Any, context: Any, operation_name: str | None
    ) -> Meter | ExecutionResult | None:
        """Stage 3: the operation's estimate; a refusal, or the meter that execution charges."""
        if query is None or self.limit_settings is None:
            return None
        measured = self._estimate(query, variables, context, operation_name)
        if isinstance(measured, GraphQLError):
            self.process_errors([measured])
            return ExecutionResult(data=None, errors=[measured])
        if measured is None or not isinstance(context, RequestContext):
            return None
        level = context.level
        meter = Meter(self.limit_settings.budget(level), level, measured.cost)
        context.meter = meter
        return meter

    def _answer(
        self, result: ExecutionResult, meter: Meter | None, upstream: Budget, want_cost: bool
    ) -> ExecutionResult:
        """Stage 5: a budget's refusal is the answer; denials once per selection; the cost."""
        refusal = _budget_refusal(meter, upstream)
        if refusal is not None:
            # Over a budget: the refusal is the answer, whatever else had been resolved.
            self.process_errors([refusal])
            result = ExecutionResult(data=None, errors=[refusal], extensions=result.extensions)
        elif result.errors:
            result.errors = collapse_denials(result.errors)
            if result.data is None:  # the document did not parse or validate
                result.errors = with_hints(result.errors, self._schema)
        if want_cost and meter is not None:
            report = {**meter.report(), "upstreamRequests": upstream.made}
            result.extensions = {**(result.extensions or {}), "cost": report}
        return result

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Operations over WebSockets: the same document limits as over HTTP, first."""
        if query is not None and self.limit_settings is not None:
            error = _document_refusal(query, variable_values, self.limit_settings)
            if error is None:
                measured = self._estimate(query, variable_values, context_value, operation_name)
                error = measured if isinstance(measured, GraphQLError) else None
            if error is not None:
                self.process_errors([error])
                return _refused(error)
        return await super().stream(
            query, variable_values, context_value, root_value, operation_name, *args, **kwargs
        )

    def _estimate(
        self,
        query: str,
        variables: dict[str, Any] | None,
        context: Any,
        operation_name: str | None,
    ) -> QueryMeasure | GraphQLError | None:
        """The operation measured (linear in the document), or its refusal; None when the
        document does not parse (strawberry reports the syntax error)."""
        assert self.limit_settings is not None
        try:
            document = parse_once(query, ())
        except GraphQLError:
            return None
        runtime = getattr(context, "runtime", None)
        knowledge = (
            Knowledge(self.bindings_by_type, runtime.observed)
            if runtime is not None and self.bindings_by_type
            else None
        )
        measured = measure(
            self._schema,
            document,
            operation_name,
            variables,
            self.limit_settings.default_first,
            knowledge,
        )
        error = verdict(measured, self.limit_settings, getattr(context, "level", 0))
        return error if error is not None else measured

    async def _fast(
        self,
        query: str | None,
        variables: dict[str, Any] | None,
        context: Any,
        operation_name: str | None,
    ) -> ExecutionResult | None:
        """The one-pass answer, or None when the field-by-field path must answer."""
        fast = self.fast_path
        if fast is None or query is None or not isinstance(context, RequestContext):
            return None
        plan = fast.plan(query, operation_name, context.level)
        if plan is None:
            return None
        notices = len(context.notices)
        try:
            data = await plan.run(context, variables)
        except StepAside:
            refusal = _budget_refusal(context.meter, upstream_budget.current())
            if refusal is not None:
                # Stopped by a budget: the refusal is the answer (no second attempt).
                return ExecutionResult(data=None, errors=[refusal])
            # Start the field-by-field path from a clean slate (upstream answers are cached).
            fast.step_asides += 1
            del context.notices[notices:]
            context.loaders.clear()
            return None
        fast.runs += 1
        extensions = {"notices": context.notices} if context.notices else {}
        return ExecutionResult(data=data, errors=None, extensions=extensions)

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            code = (error.extensions or {}).get("code")
            if code == "INTERNAL_SERVER_ERROR":
                continue  # already logged with its traceback
            log.info("query error %s: %s", code, error.message)


def _document_refusal(query: str, variables: Any, settings: LimitSettings) -> GraphQLError | None:
    """Size, tokens and variables, before the document is parsed."""
    return check_document(query, settings) or check_variables(variables, settings)


def _budget_refusal(meter: Meter | None, upstream: Budget | None) -> GraphQLError | None:
    """The budget refusal that ended the request, if one did (the cost meter's first)."""
    if meter is not None and meter.error is not None:
        return meter.error
    refused = upstream.refusal() if upstream is not None else None
    if refused is None:
        return None
    return GraphQLError(refused.message, extensions=refused.extensions)


def _wants_cost(extensions: Any) -> bool:
    """Whether the request asked for ``extensions.cost`` (``{"extensions": {"cost": true}}``)."""
    return isinstance(extensions, Mapping) and bool(extensions.get("cost"))


def collapse_denials(errors: list[GraphQLError]) -> list[GraphQLError]:
    """One ``FORBIDDEN`` error per denied selection, not one per row.

    Errors that differ only in the row indices of their path are one: the first is kept
    (its path names the first row) with ``extensions.count`` rows.
    """
    out: list[GraphQLError] = []
    seen: dict[tuple[Any, ...], GraphQLError] = {}
    for error in errors:
        extensions = error.extensions or {}
        if extensions.get("code") != "FORBIDDEN" or not error.path:
            out.append(error)
            continue
        shape = (error.message, *("#" if isinstance(p, int) else p for p in error.path))
        first = seen.get(shape)
        if first is None:
            seen[shape] = error
            error.extensions = {**extensions, "count": 1}
            out.append(error)
        else:
            first.extensions = {**(first.extensions or {}), "count": first.extensions["count"] + 1}  # type: ignore[index]
    return out


async def _refused(error: GraphQLError) -> AsyncIterator[PreExecutionError]:
    """A stream whose only result is a refusal before execution."""
    yield PreExecutionError(data=None, errors=[error])
