"""What every source answering at an instant shares: the store it needs, the instant in UTC,
and the notice of an instant before the history begins."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gateway.history.store import HistoryStore
from gateway.model.errors import HistoryUnavailableError

__all__ = ["before_history", "in_utc", "required"]


def required(history: HistoryStore | None, register: str) -> HistoryStore:
    """The history store, or the error saying none is configured."""
    if history is None:
        raise HistoryUnavailableError(
            f"{register}: no history store is configured ([history])", register=register
        )
    return history


def in_utc(instant: dt.datetime) -> dt.datetime:
    """An asked instant, timezone-aware (without an offset it is UTC)."""
    return instant.replace(tzinfo=dt.UTC) if instant.tzinfo is None else instant


def before_history(
    register: str, instant: dt.datetime, known: dt.datetime | None, **where: Any
) -> dict[str, Any]:
    """The ``BEFORE_HISTORY`` notice: nothing is kept at ``instant`` (``where`` narrows it,
    e.g. ``election=…``); ``knownFrom`` says from when the register is known."""
    since = "nothing yet" if known is None else f"from {known.isoformat()}"
    scope = "".join(f" for {value}" for value in where.values())
    return {
        "code": "BEFORE_HISTORY",
        "register": register,
        **where,
        "message": f"{register}: nothing is kept{scope} at {instant.isoformat()}; "
        f"the history kept begins {since}",
        **({"knownFrom": known.isoformat()} if known is not None else {}),
    }
