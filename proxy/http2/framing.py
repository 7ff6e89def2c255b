"""HTTP/2 to clients, the frame layer: h2's server state machine as the client connection uses it.

`ServerH2` keeps our side open after the client's GOAWAY (the client's streams are answered) and frames
responses itself; `AdvertisedSettings` advertises MAX_CONCURRENT_STREAMS without h2 enforcing it (the
connection refuses just the extra stream). The connection (proxy/http2/connection.py) drives both.
"""

from __future__ import annotations

import struct
from typing import Any

from h2.connection import ConnectionState
from h2.exceptions import FlowControlError, FrameTooLargeError
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.settings import SettingCodes, Settings
from h2.stream import StreamInputs

from proxy.upstream.h2_graceful import GracefulH2


class AdvertisedSettings(Settings):
    """Our SETTINGS: MAX_CONCURRENT_STREAMS is advertised (the mapping value h2 serializes) but h2 does not
    enforce it (the property its HEADERS check reads): h2 would make a stream over it a connection error, and
    we refuse only that stream (H2ClientConnection._request)."""

    @property
    def max_concurrent_streams(self) -> int:
        return 2**31

    @max_concurrent_streams.setter
    def max_concurrent_streams(self, value: int) -> None:
        self[SettingCodes.MAX_CONCURRENT_STREAMS] = value


# A frame's 9-byte header (RFC 9113 4.1: 24-bit length as 16 + 8 bits, type, flags, stream id), hyperframe's layout.
_frame_head = struct.Struct(">HBBBL").pack
_DATA, _HEADERS, _CONTINUATION = 0x0, 0x1, 0x9
_END_STREAM, _END_HEADERS = 0x1, 0x4
_SERVER_OPEN = ConnectionState.SERVER_OPEN
_SEND_HEADERS = StreamInputs.SEND_HEADERS
_SEND_INFORMATIONAL = StreamInputs.SEND_INFORMATIONAL_HEADERS
_SEND_DATA = StreamInputs.SEND_DATA
_SEND_END_STREAM = StreamInputs.SEND_END_STREAM


class ServerH2(GracefulH2):
    """h2's server state machine, with two differences.

    The client's GOAWAY does not close our side (GracefulH2): the streams the client opened before it are
    answered (RFC 9113 6.8). The connection class refuses new streams after it and closes when the last is done.

    Responses are framed here: `send_headers`, `send_data` and `end_stream` make the same state transitions
    and flow-control accounting as h2's, and the same checks of what the caller may send, but write the
    frames' bytes straight into h2's output instead of building hyperframe objects, logging, and looking at
    the header fields again (outbound validation is off: proxy/http2/stream.py builds them). They were a
    third of h2's cost per request. Anything but the plain case (a stream h2 does not know, a connection not
    open, priority) is left to h2's own methods.
    """

    def send_headers(self, stream_id: int, headers: Any, end_stream: bool = False,
                     priority_weight: int | None = None, priority_depends_on: int | None = None,
                     priority_exclusive: bool | None = None) -> None:
        stream = self.streams.get(stream_id)
        if (stream is None or self.state_machine.state is not _SERVER_OPEN or priority_weight is not None
                or priority_depends_on is not None or priority_exclusive is not None):
            super().send_headers(stream_id, headers, end_stream, priority_weight, priority_depends_on,
                                 priority_exclusive)
            return
        machine = stream.state_machine
        first = headers[0]
        if first[0] == b":status" and first[1][:1] == b"1":  # (h2's is_informational_response)
            if end_stream:
                raise H2ProtocolError("Cannot set END_STREAM on informational responses.")
            machine.process_input(_SEND_INFORMATIONAL)
        else:
            machine.process_input(_SEND_HEADERS)
        block = self.encoder.encode(headers)
        if end_stream:
            machine.process_input(_SEND_END_STREAM)
        elif machine.trailers_sent:
            raise H2ProtocolError("Trailers must have END_STREAM set.")
        flags = _END_STREAM if end_stream else 0
        size = len(block)
        limit = self.max_outbound_frame_size
        out = self._data_to_send
        if size <= limit:
            out += _frame_head(size >> 8, size & 0xFF, _HEADERS, flags | _END_HEADERS, stream_id)
            out += block
            return
        pieces = [block[at : at + limit] for at in range(0, size, limit)]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            length = len(piece)
            out += _frame_head(length >> 8, length & 0xFF, _CONTINUATION if index else _HEADERS,
                               (flags if not index else 0) | (_END_HEADERS if last else 0), stream_id)
            out += piece

    def send_data(self, stream_id: int, data: Any, end_stream: bool = False, pad_length: Any = None) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or self.state_machine.state is not _SERVER_OPEN or pad_length is not None:
            super().send_data(stream_id, data, end_stream, pad_length)
            return
        size = len(data)
        if size > 0 and size > min(self.outbound_flow_control_window, stream.outbound_flow_control_window):
            raise FlowControlError(f"Cannot send {size} bytes, flow control window is "
                                   f"{self.local_flow_control_window(stream_id)}")
        if size > self.max_outbound_frame_size:
            raise FrameTooLargeError(f"Cannot send frame size {size}, max frame size is "
                                     f"{self.max_outbound_frame_size}")
        machine = stream.state_machine
        machine.process_input(_SEND_DATA)
        if end_stream:
            machine.process_input(_SEND_END_STREAM)
        out = self._data_to_send
        out += _frame_head(size >> 8, size & 0xFF, _DATA, _END_STREAM if end_stream else 0, stream_id)
        out += data
        stream.outbound_flow_control_window -= size
        self.outbound_flow_control_window -= size

    def end_stream(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or self.state_machine.state is not _SERVER_OPEN:
            super().end_stream(stream_id)
            return
        stream.state_machine.process_input(_SEND_END_STREAM)
        self._data_to_send += _frame_head(0, 0, _DATA, _END_STREAM, stream_id)
