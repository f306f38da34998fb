"""The demo's outside systems, in a process of their own: the library's member system (SIP2,
with the demo's cards) and the academy's platform (SCIM), with the registry's link to that
platform (the sync that fills it at start and then sends each seat's changes).

In a library they are other systems on other machines, and the sync is registry work that
needs no patron page. In `kiosk demo` they run in a child process, so the kiosk's process
holds what serves the pages (the SCIM client and platform cost about 20 MB), and a fault in
one does not take the other down. The child ends with the demo however the demo ends: it
stops when its standard input closes.

    python -m kiosk.demo_partners [--sip-port N]
        [--scim-port N --scim-token-file F --database-url URL]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from .academy_demo import ScimTestServer, free_port
from .registry import academy_sender
from .registry.academy_link import AcademyLink, LinkDown, Refused, ScimConfig
from .registry.academy_sync import reconcile
from .registry.demo_member_system import DEMO_CARDS, DEMO_LOGIN, DemoMemberSystem
from .registry.services import utcnow
from .registry.store import Store, make_engine


class DemoPartners:
    """The child process, seen from `kiosk demo`: ports chosen now (the demo names the
    addresses in its configuration before the child runs), then `start` and `stop`."""

    def __init__(self, *, member_system: bool, academy_token_file: str | None):
        self.sip_port = free_port() if member_system else 0
        self.scim_port = free_port() if academy_token_file else 0
        self.academy_token_file = academy_token_file
        self.process: subprocess.Popen[str] | None = None

    def academy_config(self) -> dict[str, str]:
        """The registry's link to the demo's platform (the registry queues each seat's
        changes for it; the child sends them)."""
        if not self.academy_token_file:
            return {}
        return {"ACADEMY_SCIM_URL": self.scim_url,
                "ACADEMY_SCIM_TOKEN_FILE": self.academy_token_file}

    @property
    def scim_url(self) -> str:
        return f"http://127.0.0.1:{self.scim_port}/v2"

    def start(self, database_url: str) -> DemoPartners:
        if not (self.sip_port or self.scim_port):
            return self  # nothing to run
        command = [sys.executable, "-m", "kiosk.demo_partners"]
        if self.sip_port:
            command += ["--sip-port", str(self.sip_port)]
        if self.academy_token_file:
            command += ["--scim-port", str(self.scim_port),
                        "--scim-token-file", self.academy_token_file,
                        "--database-url", database_url]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, text=True)
        return self

    def stop(self) -> None:
        if self.process is not None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None


def link_academy(cfg: ScimConfig, database_url: str) -> None:
    """Fill the platform from the registry (it starts empty each time, the registry on disk
    does not), then send each seat's changes every 2 s, in the background."""
    store = Store(make_engine(database_url))
    try:
        with AcademyLink(cfg) as link:
            reconcile(store, link, utcnow(), actor="demo")
    except (OSError, LinkDown, Refused) as exc:
        print(f"The demo's academy did not start ({exc}); seats stay queued.", file=sys.stderr)
        return
    academy_sender.start_sender(store, cfg, utcnow, every=2.0)


def serve(sip_port: int, scim_port: int, token_file: str, database_url: str) -> None:
    """Starts the asked servers, links the academy, and serves until stdin closes."""
    if sip_port:
        DemoMemberSystem(DEMO_CARDS, login=DEMO_LOGIN, port=sip_port).start()
    cfg = ScimConfig.from_config({"ACADEMY_SCIM_URL": f"http://127.0.0.1:{scim_port}/v2",
                                  "ACADEMY_SCIM_TOKEN_FILE": token_file}) if scim_port else None
    if cfg is not None:
        ScimTestServer(cfg.token, port=scim_port).start()
        link_academy(cfg, database_url)
    sys.stdin.read()  # returns when the demo's end of the pipe closes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sip-port", type=int, default=0)
    parser.add_argument("--scim-port", type=int, default=0)
    parser.add_argument("--scim-token-file", default="")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args(argv)
    try:
        serve(args.sip_port, args.scim_port, args.scim_token_file, args.database_url)
    except KeyboardInterrupt:  # Ctrl+C reaches the demo's whole process group: stop quietly
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
