"""uvicorn's httptools protocol with a bound on the request head.

httptools buffers a header of any size before the application sees it, so
an endless header would grow a worker's memory without limit.  This
subclass counts the bytes of each request head as they arrive and, once
more than `max_head` bytes came without the blank line that ends the head,
answers 431 and closes the connection.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_END = b"\r\n\r\n"


def bounded_protocol(max_head: int, on_reject: Any = None) -> type:
    """An HttpToolsProtocol class that rejects request heads over max_head."""
    body = b'{"message":"request header fields too large (limit %d bytes)"}' % max_head
    reply = (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _hl_head = 0  # bytes of the current head seen, -1: in a body
        _hl_tail = b""

        def data_received(self, data: bytes) -> None:
            seen = self._hl_head
            if seen >= 0:
                room = max_head - seen
                if len(data) > room and _END not in self._hl_tail + data[:room]:
                    if on_reject is not None:
                        on_reject()
                    self.transport.write(reply)
                    self.transport.close()
                    return
                self._hl_head = seen + len(data)
                self._hl_tail = data[-3:]
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._hl_head = -1
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._hl_head = 0
            self._hl_tail = b""

    return BoundedHttpToolsProtocol
