"""One request log for every replica: what was asked, how it was answered, which fault hit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Request", "RequestLog"]

_CONDITIONAL = ("if-none-match", "if-modified-since")


@dataclass(slots=True)
class Request:
    """One request a replica received.

    ``method``: the HTTP method, or the SFTP operation (``list``, ``open``, ``stat``);
    ``path``: the percent-decoded path (or the name the replica gives what was asked for);
    ``params``: the decoded query parameters (the first of repeated names); ``status``: the
    status answered (None while pending, or when the connection ended without an answer);
    ``fault``: the kind of the fault that answered it; ``size``: the body bytes sent (SFTP: the
    size of the file opened); ``at``: when it arrived (``time.time()``); ``query``: the raw
    query string; ``raw_path``: the path as sent; ``headers``: the request headers the replica
    keeps (lower-case names).
    """

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    fault: str | None = None
    size: int = 0
    at: float = field(default_factory=time.time)
    query: str = ""
    raw_path: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.raw_path:
            self.raw_path = self.path

    @property
    def target(self) -> str:
        """``path?query``: what faults are matched against."""
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def conditional(self) -> bool:
        """Whether it was a conditional request (``If-None-Match``, ``If-Modified-Since``)."""
        return any(name in self.headers for name in _CONDITIONAL)

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON (for a replica's control endpoint)."""
        return {
            "method": self.method,
            "path": self.path,
            "params": self.params,
            "status": self.status,
            "fault": self.fault,
            "size": self.size,
            "at": self.at,
            "conditional": self.conditional,
        }


class RequestLog(list[Request]):
    """The requests a replica received, oldest first (a list, with filters).

    ``keeping = False`` stops it from growing (a long benchmark needs no log).
    """

    keeping: bool = True

    def record(self, request: Request) -> Request:
        """Append ``request`` (when keeping) and return it; its status is filled in when
        answered."""
        if self.keeping:
            self.append(request)
        return request

    def where(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        contains: str | None = None,
        suffix: str | None = None,
        status: int | None = None,
        fault: str | bool | None = None,
        test: Callable[[Request], bool] | None = None,
    ) -> list[Request]:
        """The requests matching every filter given.

        ``path``: exactly this path; ``contains``: a substring of the target (``path?query``);
        ``suffix``: the path ends so; ``fault``: of this kind (True: any fault, False: none).
        """
        return [r for r in self if _keeps(r, method, path, contains, suffix, status, fault, test)]

    def paths(self, **filters: Any) -> list[str]:
        """The paths of the requests :meth:`where` keeps."""
        return [request.path for request in self.where(**filters)]

    def statuses(self, **filters: Any) -> list[int | None]:
        """The statuses of the requests :meth:`where` keeps."""
        return [request.status for request in self.where(**filters)]

    def since(self, mark: int) -> list[Request]:
        """The requests after the first ``mark`` (``mark = len(log)`` taken earlier)."""
        return self[mark:]


def _keeps(
    request: Request,
    method: str | None,
    path: str | None,
    contains: str | None,
    suffix: str | None,
    status: int | None,
    fault: str | bool | None,
    test: Callable[[Request], bool] | None,
) -> bool:
    if method is not None and request.method != method:
        return False
    if path is not None and request.path != path:
        return False
    if contains is not None and contains not in request.target:
        return False
    if suffix is not None and not request.path.endswith(suffix):
        return False
    if status is not None and request.status != status:
        return False
    if fault is True and request.fault is None:
        return False
    if fault is False and request.fault is not None:
        return False
    if isinstance(fault, str) and request.fault != fault:
        return False
    return test is None or test(request)
