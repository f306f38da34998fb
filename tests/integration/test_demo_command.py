"""`kiosk demo` as a librarian starts it: a real process on a free port, its outside systems
(the member system, the academy's platform and the sync with it) in a child process that
ends with it, however it ends."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, update

from kiosk.academy_demo import free_port
from kiosk.registry.demo_member_system import DEMO_CARDS, DEMO_LOGIN
from kiosk.registry.member_system import (
    MemberSystemConfig,
    MemberSystemDown,
    Verdict,
    check_card,
)
from kiosk.registry.store import AcademyChange, Library, Patron

pytestmark = pytest.mark.slow

KIOSK = str(Path(sys.executable).parent / "kiosk")


class Demo:
    """`kiosk demo --port N` in its own session, its output gathered line by line."""

    def __init__(self, instance: Path, *options: str):
        self.instance, self.port = instance, free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
        env["KIOSK_INSTANCE_PATH"] = str(instance)
        self.process = subprocess.Popen(
            [KIOSK, "demo", "--port", str(self.port), *options], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err)):
            threading.Thread(target=lambda s=stream, into=lines: into.extend(s), daemon=True
                             ).start()

    def get(self, path: str) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return int(r.status)

    def partners(self) -> list[int]:
        """The pids of this demo's child process (its command line names this instance)."""
        found = []
        for proc in Path("/proc").iterdir():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if proc.name.isdigit() and "kiosk.demo_partners" in cmdline \
                    and str(self.instance) in cmdline:
                found.append(int(proc.name))
        return found

    def end(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def eventually(check: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (OSError, MemberSystemDown):  # not up yet
            result = None
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture
def demo(instance: Path) -> Iterator[Demo]:
    started = Demo(instance)
    yield started
    started.end()


def registry_counts(instance: Path) -> tuple[int, int, int]:
    """(patrons, academy changes, of them done) in the demo's registry."""
    engine = create_engine(f"sqlite:///{instance / 'registry.sqlite3'}")
    try:
        with engine.connect() as conn:
            patrons = conn.scalar(select(func.count()).select_from(Patron)) or 0
            changes = conn.scalar(select(func.count()).select_from(AcademyChange)) or 0
            done = conn.scalar(select(func.count()).select_from(AcademyChange).where(
                AcademyChange.done_at.is_not(None))) or 0
    finally:
        engine.dispose()
    return patrons, changes, done


def test_a_new_demo_serves_its_cards_samples_and_academy_and_stops_whole_on_ctrl_c(
        demo: Demo) -> None:
    assert eventually(lambda: demo.get("/nl/") == 200), demo.out + demo.err
    port = int(re.search(r"SIP2\) on 127\.0\.0\.1:(\d+)", "".join(demo.out)).group(1))
    card = DEMO_CARDS[0]
    config = MemberSystemConfig(host="127.0.0.1", port=port, login_user=DEMO_LOGIN[0],
                                password_file=str(demo.instance / "demo-sip-password"))
    checked = eventually(lambda: check_card(config, card.barcode, card.pin, datetime.now()))
    assert checked and checked.verdict is Verdict.MEMBER, checked  # type: ignore[union-attr]

    def samples_in_the_academy() -> bool:
        patrons, changes, done = registry_counts(demo.instance)
        return patrons == 80 and changes > 0 and done == changes

    assert eventually(samples_in_the_academy), (registry_counts(demo.instance), demo.err)
    assert len(demo.partners()) == 1

    os.killpg(demo.process.pid, signal.SIGINT)  # Ctrl+C in its terminal
    assert demo.process.wait(15) == 0
    assert eventually(lambda: "Stopped." in "".join(demo.out), timeout=5), demo.out
    assert not eventually(lambda: "Traceback" in "".join(demo.err), timeout=1), demo.err
    assert eventually(lambda: not demo.partners(), timeout=10)


def test_a_demo_started_again_adds_nothing_and_its_partners_end_when_it_is_killed(
        demo: Demo) -> None:
    assert eventually(lambda: demo.get("/fr/") == 200), demo.out + demo.err
    assert not any("fictional patrons" in line for line in demo.out)
    assert eventually(lambda: len(demo.partners()) == 1)
    demo.process.kill()  # the demo alone, as a crash would: its child sees its pipe close
    demo.process.wait(10)
    assert eventually(lambda: not demo.partners(), timeout=10)


def test_a_demo_started_with_reset_begins_again_as_new(instance: Path) -> None:
    """What a group of trainees did is gone: their changes, and the fictional patrons come
    back as on the first start."""
    engine = create_engine(f"sqlite:///{instance / 'registry.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(update(Library).where(Library.code == "ANT-PERMEKE")
                     .values(name="Renamed in practice"))
    engine.dispose()
    demo = Demo(instance, "--reset")
    try:
        assert eventually(lambda: demo.get("/en/") == 200), demo.out + demo.err
        assert any("back at its start" in line for line in demo.out), demo.out
        assert eventually(lambda: registry_counts(instance)[0] == 80), registry_counts(instance)
        engine = create_engine(f"sqlite:///{instance / 'registry.sqlite3'}")
        with engine.connect() as conn:
            assert conn.scalar(select(Library.name).where(Library.code == "ANT-PERMEKE")) \
                != "Renamed in practice"
        engine.dispose()
    finally:
        demo.end()
