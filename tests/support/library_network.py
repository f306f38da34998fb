"""A library's network on loopback, for the terminal's way to its registry: a WSGI app served
over HTTPS with a certificate of the network's own CA (`serve_tls`), an HTTP CONNECT proxy
that counts its tunnels (`ConnectProxy`), and host names only this process resolves, like
names of a library's internal DNS (`names_resolved`). Everything stays on 127.0.0.0/8 and
every socket has a timeout of a few seconds."""

from __future__ import annotations

import base64
import ipaddress
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from werkzeug.serving import make_server

from tests.support.nginx import Certificate

TIMEOUT = 5.0  # seconds any socket here waits for its peer


@contextmanager
def serve_tls(app: Any, certificate: Certificate) -> Iterator[int]:
    """Serves `app` over HTTPS on 127.0.0.1 with `certificate`; yields the port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate.chain), str(certificate.key))
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=context)
    server.timeout = TIMEOUT
    thread = threading.Thread(target=server.serve_forever, name="tls-registry", daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def names_resolved(names: dict[str, str]) -> Iterator[None]:
    """While the block runs, each host name in `names` resolves to its address in this
    process (a library's internal DNS); every other name resolves as before."""
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in names:
            host = names[host]
        return original(host, *args, **kwargs)

    with mock.patch("socket.getaddrinfo", getaddrinfo):
        yield


@dataclass
class Tunnel:
    target: str  # host:port as the client asked for it
    proxy_authorization: str | None


@dataclass
class ConnectProxy:
    """An HTTP proxy on 127.0.0.1 that only tunnels (CONNECT), as a library's HTTPS proxy does
    for TLS: each tunnel is noted, with the credentials sent. It reaches loopback only."""

    tunnels: list[Tunnel] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            rbufsize = 0  # read no further than the CONNECT's head: the rest is the tunnel's

            def handle(self) -> None:
                proxy.tunnel(self.connection, self.rfile)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="connect-proxy",
                                       daemon=True)
        self.thread.start()

    def credentials(self) -> list[str | None]:
        """user:password of each tunnel's Proxy-Authorization (Basic), None without one."""
        found = []
        for tunnel in self.tunnels:
            value = tunnel.proxy_authorization
            found.append(base64.b64decode(value.split()[1]).decode() if value else None)
        return found

    def tunnel(self, client: socket.socket, rfile: Any) -> None:
        client.settimeout(TIMEOUT)
        head = rfile.readline(8192).decode("latin-1").split()
        headers = {}
        while (line := rfile.readline(8192).decode("latin-1").strip()):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if len(head) != 3 or head[0] != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = head[1].rpartition(":")
        with self.lock:
            self.tunnels.append(Tunnel(head[1], headers.get("proxy-authorization")))
        try:
            address = str(socket.getaddrinfo(host.strip("[]"), int(port),
                                             type=socket.SOCK_STREAM)[0][4][0])
            if not ipaddress.ip_address(address).is_loopback:
                raise OSError(f"{host} is not on loopback")
            upstream = socket.create_connection((address, int(port)), timeout=TIMEOUT)
        except (OSError, ValueError):
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._relay(client, upstream)

    @staticmethod
    def _relay(client: socket.socket, upstream: socket.socket) -> None:
        """Bytes both ways until either side closes or both are silent for TIMEOUT."""
        peers = {client: upstream, upstream: client}
        while True:
            ready, _, _ = select.select(list(peers), [], [], TIMEOUT)
            if not ready:
                return
            for sock in ready:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                peers[sock].sendall(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
