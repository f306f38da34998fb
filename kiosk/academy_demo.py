"""An academy platform for the demo and the tests: scim2-server with its in-memory backend,
served on loopback in a thread, with one bearer token. Nothing leaves the machine.

Stopping and starting it again keeps its users and its port (the tests take the platform
down for a while).
"""

from __future__ import annotations

import secrets
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """No access lines: they would carry user ids (and the demo's console stays calm)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now on loopback (the demo names its platform's address before it runs)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class ScimTestServer:
    """A SCIM 2.0 endpoint at `url` (…/v2) accepting `token`; `users()` lists what it holds."""

    storage: Any
    app: Any

    def __init__(self, token: str = "", host: str = "127.0.0.1", port: int = 0):
        # Imported here, not at module level: `kiosk demo` builds its platform in the
        # background, after its first page (scim2-server's models take a while to build).
        from scim2_models import ScimProvider
        from scim2_server.memory import InMemoryStorage
        from scim2_server.service import ScimService
        from scim2_server.testserver.application import (
            BEARER_TOKEN_SCHEME,
            BearerTokenApplication,
        )
        from scim2_server.utils import (
            load_default_resource_types,
            load_default_schemas,
            load_default_service_provider_config,
        )

        self.token = token or secrets.token_urlsafe(24)
        self.host, self.port = host, port
        config = load_default_service_provider_config()
        config.authentication_schemes = [*(config.authentication_schemes or []),
                                         BEARER_TOKEN_SCHEME]
        provider = ScimProvider.from_discovery(load_default_schemas().values(),
                                               load_default_resource_types().values(),
                                               config=config)
        self.storage = InMemoryStorage()
        self.app = BearerTokenApplication(self.storage, provider,
                                          service=ScimService(provider,
                                                              secret=secrets.token_urlsafe(32)),
                                          bearer_tokens=[self.token])
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v2"

    def start(self) -> ScimTestServer:
        server = make_server(self.host, self.port, self.app, server_class=_Server,
                             handler_class=_QuietHandler)
        self._server = server
        self.port = server.server_port
        self._thread = threading.Thread(target=server.serve_forever, name="kiosk-scim-demo",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def users(self) -> list[Any]:
        """Every user the platform holds (read from its storage, not over HTTP; its users
        are of the server's own User[EnterpriseUser] model)."""
        return [r for r in self.storage.resources if type(r).__name__.startswith("User")]
