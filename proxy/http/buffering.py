"""Request body buffering (ingress-nginx's `proxy-request-buffering: on`, nginx's proxy_request_buffering): the
whole request body is read before the pod is dialed, so a slow client never holds a pod's connection.

The exchange already hands each body piece to a `mirror.Copies` and tells it when the body is complete; a
`BodyHold` takes that place (keeping any mirror copies inside), counts what arrives and, when the body is
complete, starts forwarding. Bodies are held in memory only: past `REQUEST_BUFFER_LIMIT` the request starts
going up and the rest streams (nginx spools to a file instead), and the route's proxy-body-size (413) still
bounds what is accepted at all.
"""

from __future__ import annotations

from collections.abc import Callable

from proxy.http.mirror import Copies

# Body bytes held per request before it is sent on anyway (the rest streams): a bound on the memory one
# request may take, not a limit on the body (that is proxy-body-size's).
REQUEST_BUFFER_LIMIT = 8 * 1024 * 1024


class BodyHold(Copies):
    """Holds a request until its body is complete (or past REQUEST_BUFFER_LIMIT), then calls `forward`."""

    __slots__ = ("inner", "forward", "held")

    def __init__(self, inner: Copies | None, forward: Callable[[], None]) -> None:
        self.pending = []
        self.inner = inner  # the request's mirror copies, if any
        self.forward: Callable[[], None] | None = forward
        self.held = 0

    def add(self, framed: tuple[bytes, ...], size: int) -> bool:
        inner = self.inner
        if inner is not None and not inner.add(framed, size):
            self.inner = None
        self.held += size
        if self.held > REQUEST_BUFFER_LIMIT and self.forward is not None:
            forward, self.forward = self.forward, None
            forward()
        return self.forward is not None or self.inner is not None

    def send(self, end: bytes = b"") -> None:
        if self.inner is not None:
            self.inner.send(end)
            self.inner = None
        forward, self.forward = self.forward, None
        if forward is not None:
            forward()


__all__ = ["REQUEST_BUFFER_LIMIT", "BodyHold"]
