"""flex/_wire.py, the client's HTTP/1.1 on a kept-alive socket, against a loopback server
that answers each request with bytes the test wrote: how each way of ending a body is read,
when a connection may carry the next request, and what is refused."""

from __future__ import annotations

import gzip
import socket
import threading

import pytest

from flex import _wire
from flex._http import KeptAlive


class RawServer:
    """Accepts one connection; answers the n-th request on it with `answers[n]` (raw bytes),
    then closes it if the answer is followed by None. Records what each request was."""

    def __init__(self, answers: list[bytes | None]):
        self.answers = answers
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.listener:
            conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as reader:
            for answer in self.answers:
                if answer is None:
                    return
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    byte = reader.read(1)
                    if not byte:
                        return
                    head += byte
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + reader.read(length))
                conn.sendall(answer)

    def stop(self) -> None:
        """Waits for the connection to end (every test's client closes its own)."""
        self.thread.join(5)


@pytest.fixture
def serve():
    servers = []

    def start(*answers):
        servers.append(RawServer(list(answers)))
        conn = _wire.Connection.open("127.0.0.1", servers[-1].port, 5, None)
        return servers[-1], conn

    yield start
    for server in servers:
        server.stop()


def ask(conn, body=b'{"a": 1}'):
    return conn.exchange("POST", "/v1/transmit", "flex.test", {"Accept": "application/json"},
                         body, 5)


def test_a_request_goes_in_one_piece_with_its_host_and_length(serve):
    server, conn = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    assert ask(conn) == (200, {"content-length": "2"}, b"{}")
    assert server.requests == [b"POST /v1/transmit HTTP/1.1\r\nHost: flex.test\r\n"
                               b"Accept: application/json\r\nContent-Length: 8\r\n\r\n"
                               b'{"a": 1}']
    assert conn.reusable
    conn.close()


def test_a_chunked_body_with_an_interim_answer_before_it_and_one_connection_for_two(serve):
    chunked = (b"HTTP/1.1 100 Continue\r\n\r\n"
               b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Trace: a\r\n"
               b"X-Trace: b\r\n\r\n4;ext=1\r\n{\"ok\r\n5\r\n\": 1}\r\n0\r\nX-Tail: t\r\n\r\n")
    _, conn = serve(chunked, b"HTTP/1.1 204 No Content\r\n\r\n")
    status, headers, body = ask(conn)
    assert (status, body) == (201, b'{"ok": 1}')
    assert headers.get("X-TRACE") == "a, b"  # repeated headers joined; any case
    assert ask(conn)[0] == 204  # the same connection carried the next request
    conn.close()


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
])
def test_an_answer_that_closes_its_connection_is_read_and_the_connection_not_kept(serve,
                                                                                 answer):
    _, conn = serve(answer, None)
    assert ask(conn)[2] == b"{}"
    assert not conn.reusable
    conn.close()


def test_a_body_without_a_length_runs_until_the_server_closes(serve):
    _, conn = serve(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[1, 2]", None)
    assert ask(conn)[2] == b"[1, 2]"
    assert not conn.reusable
    conn.close()


@pytest.mark.parametrize("answer, error", [
    (b"SMTP ready\r\n\r\n", _wire.ProtocolError),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", _wire.ProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", _wire.ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", _wire.ProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", ConnectionResetError),
    (b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * (_wire.MAX_LINE + 10) + b"\r\n\r\n",
     _wire.ProtocolError),
    (b"", ConnectionResetError),
])
def test_what_is_not_a_whole_http_answer_is_an_error(serve, answer, error):
    _, conn = serve(answer, None)
    with pytest.raises(error):
        ask(conn)
    conn.close()


def test_a_control_character_in_a_header_value_is_never_sent(serve):
    server, conn = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ValueError, match="control character"):
        conn.exchange("GET", "/v1/orders", "flex.test",
                      {"Authorization": "Bearer x\r\nX-Injected: 1"}, None, 5)
    conn.close()
    assert server.requests == []


def test_the_pool_decompresses_keeps_the_connection_and_drops_one_the_server_closed():
    body = gzip.compress(b'{"transmitId": "t-1"}')
    server = RawServer([b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
                        + str(len(body)).encode() + b"\r\n\r\n" + body, None])
    pool = KeptAlive(f"http://127.0.0.1:{server.port}/v1", 4, None)
    try:
        answer = pool.send("POST", "/transmit", b"{}", {}, 5, 5)
        assert answer.json == {"transmitId": "t-1"}
        assert answer.headers.get("Content-Encoding") == "gzip"
        server.thread.join(5)  # the server closed the connection after its one answer
        assert len(pool._idle) == 1 and pool._idle[0].dropped()
        assert pool._take() is None  # the closed one is dropped, not lent
    finally:
        pool.close()
        server.stop()
