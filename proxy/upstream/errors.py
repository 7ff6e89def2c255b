"""Why a proxied request failed, as a tree of exceptions that each know their answer.

Modelled on httpx: lower-level exceptions (OSError, TimeoutError, httptools errors)
are mapped to the most specific class here and chained as ``__cause__``, so a log
line shows both what we answered and what actually happened::

    UpstreamError                  base class; ``status`` is what the client is told
    ├── InvalidBackend       500   the rule's backend cannot be served (Gateway API: missing, not permitted)
    ├── NoEndpoints          503   unknown cluster, or a cluster without ready endpoints
    ├── ConnectError         502   refused, unreachable, DNS failure, reset while dialing
    │   └── ConnectTimeout   502   no TCP connection within upstream_connect_timeout
    ├── UpstreamTimeout      504   no response head (or no body progress) within upstream_read_timeout,
    │                              or the route's request timeout passed
    ├── ProtocolError        502   the upstream answered something that is not valid HTTP/1.x
    └── UpstreamClosed       502   the upstream closed or reset before the response was complete

    ClientError                    the client side failed; never an upstream's fault
    ├── BadRequest           400   (and 408/414/431/505 via ``status``) malformed or over-limit input
    └── ClientGone           ---   the client went away mid-exchange: logged at debug, nothing sent

Connect errors are the only ones retried on another endpoint (nothing was sent yet); a
response that already started cannot be replaced, so later failures abort the client
connection instead of sending an error page.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """A request could not be completed because of the upstream side."""

    status = 502


class NoEndpoints(UpstreamError):
    status = 503


class ConnectError(UpstreamError):
    status = 502


class ConnectTimeout(ConnectError):
    status = 502


class UpstreamTimeout(UpstreamError):
    status = 504


class ProtocolError(UpstreamError):
    status = 502


class UpstreamClosed(UpstreamError):
    status = 502


class ClientError(Exception):
    """A request could not be completed because of the client side."""

    status = 400


class BadRequest(ClientError):
    """Malformed or over-limit client input; ``status`` is set per instance (400, 408, 414, 431, 505)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ClientGone(ClientError):
    status = 0


class InvalidBackend(UpstreamError):
    """The rule's backend cannot be served (missing Service, kind or reference not permitted; the
    Gateway API asks for 500), or the rule has no backend to pick."""

    status = 500
