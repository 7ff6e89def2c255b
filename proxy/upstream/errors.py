"""Why a proxied request failed, as a tree of exceptions that each know their answer.

Modelled on httpx: lower-level exceptions (OSError, TimeoutError, httptools errors)
are mapped to the most specific class here and chained as ``__cause__``, so a log
line shows both what we answered and what actually happened::

    UpstreamError                  base class; ``status`` is what the client is told
    ├── InvalidBackend       500   the rule's backend cannot be served (Gateway API: missing, not permitted)
    ├── NoEndpoints          503   unknown cluster, or a cluster without ready endpoints
    ├── Overloaded           503   over a circuit-breaker limit of the cluster (``limit`` names it; the answer
    │                              carries ``x-pyngress-overloaded: <limit>``)
    ├── ConnectError         502   refused, unreachable, DNS failure, reset while dialing
    │   └── ConnectTimeout   502   no TCP connection within upstream_connect_timeout
    ├── UpstreamTimeout      504   no response head (or no body progress) within upstream_read_timeout
    │   ├── AttemptTimeout   504   the attempt's own limit passed (a retry policy's per-try timeout, the
    │   │                          route's backendRequest timeout): another attempt may follow
    │   └── RequestTimeout   504   the route's request timeout passed: never retried
    ├── ProtocolError        502   the upstream answered something that is not valid HTTP/1.x
    ├── UpstreamClosed       502   the upstream closed or reset before the response was complete
    ├── RetryableStatus      ---   the upstream answered a status the route's retry policy retries: that
    │                              answer is dropped and another attempt made (never sent to the client)
    └── InterceptedStatus    ---   the upstream answered a status the route's error pages answer instead
                                   (custom-http-errors): dropped, the default backend asked (error_pages)

    ClientError                    the client side failed; never an upstream's fault
    ├── BadRequest           400   (and 408/414/431/505 via ``status``) malformed or over-limit input
    └── ClientGone           ---   the client went away mid-exchange: logged at debug, nothing sent

Without a route retry policy, connect errors are the only ones retried on another endpoint (nothing
was sent yet); a retry policy adds resets, timeouts and statuses (see proxy.http.attempts). A
response that already started cannot be replaced, so later failures abort the client connection
instead of sending an error page. ``reason`` is the access log's word for a proxy-made answer.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """A request could not be completed because of the upstream side."""

    status = 502
    reason = "upstream-error"
    # Header fields of the answer besides the usual ones (ready bytes, each ending in CRLF).
    fields = b""


class NoEndpoints(UpstreamError):
    status = 503
    reason = "no-endpoints"


class Overloaded(UpstreamError):
    """A circuit breaker said no: `limit` is max-connections, max-pending-requests or max-parallel-requests."""

    status = 503
    reason = "overloaded"

    def __init__(self, limit: str) -> None:
        super().__init__(f"over the cluster's {limit} limit")
        self.limit = limit
        self.fields = b"x-pyngress-overloaded: " + limit.encode("ascii") + b"\r\n"


class ConnectError(UpstreamError):
    status = 502
    reason = "connect-failure"


class ConnectTimeout(ConnectError):
    status = 502
    reason = "connect-timeout"


class UpstreamTimeout(UpstreamError):
    status = 504
    reason = "upstream-timeout"


class AttemptTimeout(UpstreamTimeout):
    pass


class RequestTimeout(UpstreamTimeout):
    reason = "request-timeout"


class ProtocolError(UpstreamError):
    status = 502
    reason = "bad-response"


class UpstreamClosed(UpstreamError):
    status = 502
    reason = "upstream-reset"


class RetryableStatus(UpstreamError):
    """Raised from the response phase to drop an answer the retry policy retries (`answer`: its status)."""

    reason = "upstream-status"

    def __init__(self, answer: int) -> None:
        super().__init__(f"the upstream answered {answer}")
        self.answer = answer


class InterceptedStatus(UpstreamError):
    """Raised from the response phase to drop an answer whose status the route's error pages answer instead
    (ingress-nginx's custom-http-errors; `answer`: its status)."""

    reason = "error-page"

    def __init__(self, answer: int) -> None:
        super().__init__(f"the upstream answered {answer}")
        self.answer = answer


class ClientError(Exception):
    """A request could not be completed because of the client side."""

    status = 400
    reason = "bad-request"


class BadRequest(ClientError):
    """Malformed or over-limit client input; ``status`` is set per instance (400, 408, 414, 431, 505)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ClientGone(ClientError):
    status = 0
    reason = "client-gone"


class InvalidBackend(UpstreamError):
    """The rule's backend cannot be served (missing Service, kind or reference not permitted; the
    Gateway API asks for 500), or the rule has no backend to pick."""

    status = 500
    reason = "invalid-backend"
