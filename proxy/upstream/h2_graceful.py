"""`GracefulH2`: h2's connection state machine, except that a GOAWAY received does not close our side.

RFC 9113 6.8: after a GOAWAY, streams up to its last-stream-id "might still complete successfully"; the peer
only stops opening new ones. h2 instead moves its connection to CLOSED and drops its unsent output, so those
streams could be neither answered (to a client that sent GOAWAY) nor read to their end (from a pod that sent
one while draining). With this class the GOAWAY is only an event (ConnectionTerminated, as h2 reports it);
the protocol classes stop opening or accepting streams and close once the last one is done. Used by both
HTTP/2 sides (proxy/http2/connection.py, proxy/upstream/h2_connection.py).
"""

from __future__ import annotations

from typing import Any

from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated


class GracefulH2(H2Connection):
    """See the module: a received GOAWAY is reported, not obeyed by closing the state machine."""

    def _receive_goaway_frame(self, frame: Any) -> tuple[list[Any], list[Any]]:
        event = ConnectionTerminated()
        try:
            event.error_code = ErrorCodes(frame.error_code)
        except ValueError:
            event.error_code = frame.error_code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]
