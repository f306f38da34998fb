"""A TCP proxy on loopback that can lose the answers: the request reaches the server whole (it
runs, it commits), and the connection is closed before a byte of the answer comes back — the
terminal sees a reset line, as when a library's network drops at the worst moment."""

from __future__ import annotations

import socket
import socketserver
import struct
import threading


class LossyProxy:
    """`with LossyProxy(target_port) as proxy:` — connect to `proxy.port`; while
    `proxy.lose_answers` is set, every answer is lost (and counted in `proxy.lost`)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.lose_answers = False
        self.lost = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._relay(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._lock = threading.Lock()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)

        def forward() -> None:  # the requests, untouched
            try:
                while data := client.recv(65536):
                    upstream.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    upstream.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threading.Thread(target=forward, daemon=True).start()
        try:
            while data := upstream.recv(65536):
                if self.lose_answers:  # the server has answered: it is done; drop the line
                    with self._lock:
                        self.lost += 1
                    # Linger 0: the close is a reset, not a clean end of the answer.
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()
            client.close()

    def __enter__(self) -> LossyProxy:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
