"""A budget of upstream requests per GraphQL request.

One query may cost many upstream requests: an ``in`` list of thousands of ids is sent in
chunks, a large ``first`` in pages, a filter the upstream lacks over every row. The request
handler opens a :func:`scope` with the caller's allowance; adapters call :func:`spend`
*before* making requests whose number they know in advance (chunks of an ``in`` list, pages
of a window, documents of a fan-out), so an over-budget query stops with a clear error
before its first request rather than after hundreds.

Every upstream call also passes :func:`draw` (the register's :class:`~gateway.sources.guard.Guard`
calls it), which takes the call out of what was spent in advance, or spends one more for a
call nobody foresaw (the next page of an unbounded result). Spending in advance is a
reservation: what was reserved but not used — answered from a cache, or coalesced onto
another caller's request in flight, which never reach the Guard — is given back when the
adapter call that reserved it ends (:func:`account`; every ``Source.fetch`` runs inside one).

Without a scope (background refreshes, change detection, the command line) nothing is
counted and nothing is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from gateway.model.errors import QueryTooComplexError

__all__ = [
    "Budget",
    "UpstreamBudgetError",
    "account",
    "current",
    "draw",
    "scope",
    "spend",
    "spent",
    "uncounted",
]


class UpstreamBudgetError(QueryTooComplexError):
    """The query needs more upstream requests than the caller's level allows."""


@dataclass(slots=True)
class Budget:
    """Upstream requests of one GraphQL request: the allowance and what was used."""

    limit: int | None  # None: unlimited (still counted)
    spent: int = 0  # requests made, plus those reserved and not yet made
    made: int = 0  # requests that reached the Guard
    by_what: dict[str, int] = field(default_factory=dict)
    refused: tuple[int, str] | None = None  # (measured, what) of the first refusal
    outer: Budget | None = None  # a scope opened around this one spends along with it

    def chain(self) -> list[Budget]:
        """This budget and the ones around it."""
        out: list[Budget] = []
        budget: Budget | None = self
        while budget is not None:
            out.append(budget)
            budget = budget.outer
        return out

    def refusal(self) -> UpstreamBudgetError | None:
        """The error of the first refusal, if the query went over its budget (as raised)."""
        for budget in self.chain():
            if budget.limit is not None and budget.refused is not None:
                return _refusal(budget.limit, *budget.refused)
        return None

    def charge(self, n: int, what: str) -> None:
        """Add ``n`` to what is spent, or refuse if that would exceed the limit.

        Once refused, the query is over its budget: every later charge is refused the same
        way (a field tried again by another execution path sends nothing more upstream).
        """
        if n <= 0:
            return
        refused = self.refusal()
        if refused is not None:
            raise refused
        chain = self.chain()
        for budget in chain:
            if budget.limit is not None and budget.spent + n > budget.limit:
                budget.refused = (budget.spent + n, what)
                raise _refusal(budget.limit, budget.spent + n, what)
        for budget in chain:
            budget.spent += n
            budget.by_what[what] = budget.by_what.get(what, 0) + n

    def _made(self) -> None:
        for budget in self.chain():
            budget.made += 1

    def _refund(self, n: int) -> None:
        for budget in self.chain():
            budget.spent -= n


@dataclass(slots=True)
class _Credit:
    """Requests reserved in advance within one adapter call and not yet made."""

    budget: Budget
    parent: _Credit | None
    remaining: int = 0


_BUDGET: ContextVar[Budget | None] = ContextVar("dls_upstream_budget", default=None)
_FREE: ContextVar[bool] = ContextVar("dls_upstream_free", default=False)
_CREDIT: ContextVar[_Credit | None] = ContextVar("dls_upstream_credit", default=None)


def _refusal(limit: int, measured: int, what: str) -> UpstreamBudgetError:
    return UpstreamBudgetError(
        f"This query needs at least {measured} upstream requests ({what}); at most {limit} "
        "are allowed for your access level. To get an answer, ask for less per query: "
        "fewer ids in an `in` list, a smaller `first` (page on with the `after` cursor), "
        "fewer nested relations; for bulk data use the file exports "
        "(GET /{REG}/v{N}/download/{Entity}.csv), or a higher access level.",
        limit="upstreamRequests",
        allowed=limit,
        measured=measured,
        what=what,
    )


@contextlib.contextmanager
def _scope(limit: int | None) -> Iterator[Budget]:
    budget = Budget(limit, outer=_BUDGET.get())
    token = _BUDGET.set(budget)
    credit = _CREDIT.set(None)
    try:
        yield budget
    finally:
        _CREDIT.reset(credit)
        _BUDGET.reset(token)


def scope(limit: int | None) -> contextlib.AbstractContextManager[Budget]:
    """Count (and limit to ``limit``; None = unlimited) the upstream requests made inside.

    A scope opened inside another spends from both: the tighter limit refuses first.
    """
    if limit is not None and limit < 0:
        raise ValueError("an upstream request limit is at least 0")
    return _scope(limit)


def current() -> Budget | None:
    """The budget of the request being served, if a scope is open."""
    return _BUDGET.get()


def spend(n: int, what: str) -> None:
    """Reserve ``n`` upstream requests about to be made (``what`` says for what).

    Raises :class:`UpstreamBudgetError` (``QUERY_TOO_COMPLEX``) if they would exceed the
    budget; a no-op outside a scope. The requests then made draw on this reservation.
    """
    budget = _BUDGET.get()
    if budget is None or n <= 0:
        return
    budget.charge(n, what)
    credit = _CREDIT.get()
    if credit is None or credit.budget is not budget:
        # Reserved outside an adapter call: kept until the scope ends.
        credit = _Credit(budget, credit if credit is not None and credit.budget is budget else None)
        _CREDIT.set(credit)
    credit.remaining += n


def draw(what: str) -> None:
    """One upstream request is being made now (the Guard calls this for every call)."""
    budget = _BUDGET.get()
    if budget is None or _FREE.get():
        return
    credit = _CREDIT.get()
    while credit is not None and credit.budget is budget:
        if credit.remaining > 0:
            credit.remaining -= 1
            budget._made()
            return
        credit = credit.parent
    budget.charge(1, what)
    budget._made()


def account() -> contextlib.AbstractContextManager[None]:
    """Give back, on leaving, what was reserved inside and not used (cache hits, coalesced)."""
    return _Account()


class _Account:
    """:func:`account` as a plain context manager (entered twice per upstream query)."""

    __slots__ = ("budget", "credit", "token")

    def __enter__(self) -> None:
        budget = self.budget = _BUDGET.get()
        if budget is None:
            return
        outer = _CREDIT.get()
        credit = self.credit = _Credit(
            budget, outer if outer is not None and outer.budget is budget else None
        )
        self.token = _CREDIT.set(credit)

    def __exit__(self, *exc: object) -> None:
        budget = self.budget
        if budget is None:
            return
        _CREDIT.reset(self.token)
        budget._refund(self.credit.remaining)
        self.credit.remaining = 0


@contextlib.contextmanager
def uncounted() -> Iterator[None]:
    """Upstream calls inside are part of one already counted (a file's detached signature)."""
    token = _FREE.set(True)
    try:
        yield
    finally:
        _FREE.reset(token)


def spent() -> int:
    """Upstream requests spent so far in the current scope (0 without one)."""
    budget = _BUDGET.get()
    return 0 if budget is None else budget.spent
