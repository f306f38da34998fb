"""A SIP2 line with faults: a TCP proxy on loopback between the registry and a member system,
frame by frame (a frame ends with CR), that breaks what passes through it the way a bad
network or a broken library system does."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum


class Fault(Enum):
    NONE = "none"
    DROP = "drop"  # the connection closes when the first request arrives
    GARBAGE = "garbage"  # answers noise instead of SIP2
    SILENT = "silent"  # reads the request, never answers (a hung system)
    GARBLE_ANSWER_ONCE = "garble_answer_once"  # one answer arrives with a wrong checksum
    GARBLE_REQUEST_ONCE = "garble_request_once"  # one request arrives with a wrong checksum
    GARBLE_ALWAYS = "garble_always"  # every answer fails its checksum


def _garble(frame: bytes) -> bytes:
    """One character of the body changed: the checksum at the end no longer fits."""
    body = bytearray(frame)
    position = 3 if len(body) > 8 else 0
    body[position] = ord("X") if body[position] != ord("X") else ord("Y")
    return bytes(body)


def _frames(sock: socket.socket) -> Iterator[bytes]:
    buffer = b""
    while True:
        while b"\r" not in buffer:
            data = sock.recv(4096)
            if not data:
                return
            buffer += data
        frame, _, buffer = buffer.partition(b"\r")
        yield frame + b"\r"


class FaultyLine:
    """`with FaultyLine(target_port, Fault.X) as line:` — connect to `line.port`."""

    def __init__(self, target_port: int, fault: Fault = Fault.NONE):
        self.target_port = target_port
        self.fault = fault
        self.garbled = 0  # frames it garbled so far
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._relay(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _relay(self, client: socket.socket) -> None:
        client.settimeout(10)
        if self.fault is Fault.DROP:
            client.recv(4096)
            return
        if self.fault in (Fault.GARBAGE, Fault.SILENT):
            for _ in _frames(client):
                if self.fault is Fault.GARBAGE:
                    client.sendall(b"\x07%%not sip at all%%\r")
            return
        with socket.create_connection(("127.0.0.1", self.target_port), timeout=10) as upstream:
            answers = _frames(upstream)
            for request in _frames(client):
                if self.fault is Fault.GARBLE_REQUEST_ONCE and not self.garbled:
                    self.garbled += 1
                    request = _garble(request)
                upstream.sendall(request)
                answer = next(answers, None)
                if answer is None:
                    return
                if (self.fault is Fault.GARBLE_ALWAYS
                        or self.fault is Fault.GARBLE_ANSWER_ONCE and not self.garbled):
                    self.garbled += 1
                    answer = _garble(answer)
                client.sendall(answer)

    def __enter__(self) -> FaultyLine:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port where nothing listens (bound, then closed: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port
