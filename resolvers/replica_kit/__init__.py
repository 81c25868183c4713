"""The replica kit: what every kind's replica shares.

- :mod:`~resolvers.replica_kit.faults`: one fault vocabulary (:class:`Fault`, :class:`Faults`);
- :mod:`~resolvers.replica_kit.log`: one request log (:class:`Request`, :class:`RequestLog`);
- :mod:`~resolvers.replica_kit.clock`: one replay clock (:class:`ReplayClock`), read as an
  instant or as what is published by now;
- :mod:`~resolvers.replica_kit.http`: the faults and the log for a replica speaking HTTP, as an
  ASGI layer over its app (:class:`FaultyHttp`).

What a fault does on the wire stays with each replica's protocol (an SFTP ``cut`` breaks the
connection mid-read, an HTTP ``cut`` announces a body it does not send).
"""

from resolvers.replica_kit.clock import ReplayClock
from resolvers.replica_kit.faults import KINDS, Fault, Faults
from resolvers.replica_kit.http import FaultyHttp
from resolvers.replica_kit.log import Request, RequestLog

__all__ = ["KINDS", "Fault", "Faults", "FaultyHttp", "ReplayClock", "Request", "RequestLog"]
