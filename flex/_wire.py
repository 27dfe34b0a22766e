"""HTTP/1.1 on a kept-alive socket, as much as FlexClient's calls need (private: flex/_http.py
sends through it).

Why not `http.client`: it reads every answer's headers through the `email` package, which,
with its request building, cost about twice this module's CPU per call, on every checkout
(docs/PERFORMANCE.md, lever 1: the HTTP layer). This reads the status line (skipping 1xx), the
headers, and the body by Content-Length, chunked, or until the server closes; it writes a
request in one send. It is strict where strictness is cheap: bounded lines and headers, no
control characters in what it writes.
"""

from __future__ import annotations

import select
import socket
import ssl

MAX_LINE = 65536  # bytes in a status line, header line or chunk-size line
MAX_HEADERS = 100
_UNSAFE = ("\r", "\n", "\0")  # never written inside a request line or a header value


class ProtocolError(OSError):
    """The server's answer is not the HTTP/1.x it should be."""


class Headers(dict):
    """Response headers, names lower-cased: `get` takes any case."""

    def get(self, name: str, default: str | None = None) -> str | None:
        """The header's value (repeated headers joined with ", "), or `default`."""
        return super().get(name.lower(), default)


class Connection:
    """One socket to the server and the buffered reader of its answers."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.reusable = True  # False once an answer said (or meant) the server will close

    @classmethod
    def open(cls, host: str, port: int, timeout: float,
             context: ssl.SSLContext | None) -> Connection:
        """Connects (and, with `context`, completes the TLS handshake) within `timeout`."""
        sock = socket.create_connection((host, port), timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def dropped(self) -> bool:
        """True when the idle connection is readable: the server closed it (or sent what no
        request asked for), so it cannot carry the next request (urllib3's check too)."""
        if not hasattr(select, "poll"):  # Windows
            return bool(select.select([self.sock], [], [], 0)[0])
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        """Closes the reader and the socket."""
        self.reader.close()
        self.sock.close()

    def exchange(self, method: str, target: str, host: str, headers: dict,
                 body: bytes | None, timeout: float) -> tuple[int, Headers, bytes]:
        """Sends one request and reads its answer: (status, headers, body as sent). Raises
        OSError (TimeoutError after `timeout` seconds without a byte; ProtocolError)."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = "\r\n".join(lines)
        if any(c in text for text in (target, *headers.values()) for c in _UNSAFE):
            raise ValueError("a request line or header value holds a control character")
        self.sock.settimeout(timeout)
        self.sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + (body or b""))
        return self._answer()

    def _answer(self) -> tuple[int, Headers, bytes]:
        while True:
            version, status = self._status_line()
            headers = self._headers()
            if not 100 <= status < 200:  # 1xx: an interim answer; the real one follows
                break
        tokens = (headers.get("connection") or "").lower()
        self.reusable = ("keep-alive" in tokens if version == "HTTP/1.0"
                         else "close" not in tokens)
        if status in (204, 304):
            return status, headers, b""
        if "chunked" in (headers.get("transfer-encoding") or "").lower():
            return status, headers, self._chunked()
        length = headers.get("content-length")
        if length is None:  # the body runs until the server closes
            self.reusable = False
            return status, headers, self.reader.read()
        if not length.isdigit():
            raise ProtocolError(f"Content-Length {length!r}")
        return status, headers, self._exactly(int(length))

    def _line(self) -> bytes:
        line = self.reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ProtocolError("line too long")
        return line

    def _status_line(self) -> tuple[str, int]:
        line = self._line()
        if not line:
            raise ConnectionResetError("the server closed the connection without answering")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"status line {line[:80]!r}")
        return parts[0].decode("ascii"), int(parts[1])

    def _headers(self) -> Headers:
        headers, last = Headers(), None
        for _ in range(MAX_HEADERS + 1):
            line = self._line()
            if line in (b"\r\n", b"\n", b""):
                return headers
            text = line.decode("latin-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and last:  # an obsolete folded continuation
                headers[last] += " " + text.strip()
                continue
            name, colon, value = text.partition(":")
            if not colon:
                raise ProtocolError(f"header line {text[:80]!r}")
            last, value = name.strip().lower(), value.strip()
            headers[last] = f"{headers[last]}, {value}" if last in headers else value
        raise ProtocolError("too many headers")

    def _exactly(self, count: int) -> bytes:
        data = self.reader.read(count)
        if len(data) < count:
            raise ConnectionResetError("the server closed the connection mid-answer")
        return data

    def _chunked(self) -> bytes:
        chunks = []
        while True:
            size = self._line().split(b";", 1)[0].strip()
            try:
                count = int(size, 16)
            except ValueError:
                count = -1
            if count < 0:
                raise ProtocolError(f"chunk size {size[:20]!r}")
            if count == 0:
                while self._line() not in (b"\r\n", b"\n", b""):  # trailers, unused
                    pass
                return b"".join(chunks)
            chunks.append(self._exactly(count))
            if self._line() not in (b"\r\n", b"\n"):
                raise ProtocolError("no line end after a chunk")
