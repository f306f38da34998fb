"""A production install in a folder, run as an unprivileged service user, the way the README
and the units in deploy/linux/ say, with only the paths moved under that folder.

- `Install.root` stands for `/`: the README's `/opt/kiosk`, `/etc/kiosk` and `/var/lib/kiosk…`
  become folders under it (`Install.path`), owned by root and 0755 like the real ones, except
  the units' state directories, made as systemd makes them (owned by the user, 0700).
- `Install.as_root` runs a README line as root (a shell line: `install …`, `python3 -m venv …`);
  `Install.sudo` a `sudo -u kiosk …` line as the service user (with `runuser`, which needs no
  sudoers); `Install.systemd_run` the README's `systemd-run` line; `Install.unit` a unit's
  ExecStart. Each as systemd or sudo would: the user's environment is PATH, HOME, LANG and
  what the unit or the systemd-run line adds, nothing of this test's.
- The production user `kiosk` becomes SERVICE_USER, a system user made once for the tests.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from configparser import ConfigParser
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
LINUX = REPO / "deploy" / "linux"

PRODUCTION_USER = "kiosk"
SERVICE_USER = "kiosk-test"
# What sudo and systemd give a service: a fixed PATH (Debian's python3 first, as on the
# registry host), a UTF-8 locale; HOME comes from the user's entry (runuser sets it).
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The production paths the README and the units name, longest first.
PRODUCTION_PREFIXES = ("/var/lib/kiosk-registry", "/var/lib/kiosk", "/etc/kiosk", "/opt/kiosk")


def unavailable() -> str | None:
    """Why a service-user install cannot be tested here, or None."""
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root, to make a system user and run commands as it (CI runs as root)"
    missing = [tool for tool in ("runuser", "useradd", "install") if not shutil.which(
        tool, path=SERVICE_PATH)]
    if missing:
        return f"{', '.join(missing)} not installed"
    if not Path("/usr/bin/python3").exists() and not shutil.which("python3", path=SERVICE_PATH):
        return "no python3 for the service user"
    return None


def ensure_service_user() -> pwd.struct_passwd:
    """SERVICE_USER, made once as the README makes `kiosk` (a system user with no shell), but
    with a home it cannot write (/nonexistent): anything written to HOME fails loudly."""
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--home-dir", "/nonexistent",
                        "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                       check=True, capture_output=True, timeout=30)
        return pwd.getpwnam(SERVICE_USER)


# --- What the README and the units say ------------------------------------------------------


def readme_code_lines(text: str | None = None) -> list[str]:
    """The lines of the README's fenced code blocks, those continued with `\\` joined."""
    lines: list[str] = []
    inside, pending = False, ""
    for line in (README.read_text(encoding="utf-8") if text is None else text).splitlines():
        if line.startswith("```"):
            inside, pending = not inside, ""
        elif inside and line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].rstrip() + " "
        elif inside:
            lines.append(pending + line.strip())
            pending = ""
    return lines


def without_comment(line: str) -> str:
    """The line's words up to its `#` comment, as the shell reads them, joined again."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return " ".join(word if word in ("&&", "||", ";", "|") else shlex.quote(word)
                    for word in lexer)


def readme_line(predicate: str) -> str:
    """The README code line that starts with `predicate` (its comment dropped; the same line
    may stand in two places); fails when there is none or two different ones, so a change of
    the README cannot go untested."""
    found = {without_comment(line) for line in readme_code_lines() if line.startswith(predicate)}
    assert len(found) == 1, f"{len(found)} README code lines start with {predicate!r}: {found}"
    return found.pop()


def systemd_run_command(line: str) -> list[str]:
    """The `systemd-run …` words of a README line such as `read … && printf … | systemd-run
    … --password-file -; unset pw`: from systemd-run to the next shell operator."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    start = words.index("systemd-run")
    end = next((i for i in range(start, len(words)) if words[i] in {";", "&&", "||", "|"}),
               len(words))
    return words[start:end]


class _UnitParser(ConfigParser):
    """Keys as written (ExecStart, not execstart)."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


@dataclass(frozen=True)
class Unit:
    """What systemd takes from a unit's [Service] section to start it."""

    exec_start: list[str]
    user: str
    environment_file: str
    environment: dict[str, str]
    working_directory: str | None
    state_directory: str

    @classmethod
    def read(cls, path: Path) -> Unit:
        parser = _UnitParser(strict=False, interpolation=None, delimiters=("=",))
        parser.read_string(path.read_text(encoding="utf-8"))
        service = parser["Service"]
        environment = dict(pair.split("=", 1) for pair in shlex.split(
            service.get("Environment", "")))
        return cls(shlex.split(service["ExecStart"]), service["User"],
                   service["EnvironmentFile"], environment,
                   service.get("WorkingDirectory"), service["StateDirectory"])


def environment_file(path: Path) -> dict[str, str]:
    """A systemd EnvironmentFile as systemd reads it (as root): KEY=VALUE lines, `#` and `;`
    comments, one pair of quotes around a value removed."""
    found: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[key.strip()] = value
    return found


# --- The install --------------------------------------------------------------------------


@dataclass
class Install:
    """The production layout under `root`, used by `user`."""

    root: Path
    user: str = SERVICE_USER
    ports: dict[str, str] = field(default_factory=dict)  # a unit's --port → a free one

    def path(self, production: str) -> Path:
        """Where a production path (/etc/kiosk/…) is in this install."""
        return self.root / production.lstrip("/")

    def word(self, word: str) -> str:
        """One word of a production command, moved into this install: paths under the root,
        the `kiosk` user as the service user (User=kiosk), a unit's port as a free one."""
        for prefix in PRODUCTION_PREFIXES:
            word = re.sub(rf"(?<![\w/.-]){re.escape(prefix)}(?![\w.-])",
                          str(self.path(prefix)), word)
        if word in (f"User={PRODUCTION_USER}", f"Group={PRODUCTION_USER}"):
            return word.replace(PRODUCTION_USER, self.user)
        return self.ports.get(word, word)

    def words(self, words: list[str]) -> list[str]:
        """A command's words moved into this install; `kiosk` after -u, -g or -o (sudo,
        install) is the service user."""
        return [self.user if word == PRODUCTION_USER and before in ("-u", "-g", "-o")
                else self.word(word) for before, word in zip(["", *words], words, strict=False)]

    def make_state_directory(self, name: str) -> Path:
        """As systemd makes StateDirectory=NAME with StateDirectoryMode=0700."""
        folder = self.path(f"/var/lib/{name}")
        folder.mkdir(parents=True, exist_ok=True)
        entry = pwd.getpwnam(self.user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        folder.chmod(0o700)
        return folder

    # Running things ---------------------------------------------------------------------

    def service_environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"PATH": SERVICE_PATH, "LANG": "C.UTF-8", **(extra or {})}

    def as_root(self, line: str, cwd: Path, timeout: float = 300,
                bin_dir: Path | None = None) -> str:
        """A README shell line run by root in `cwd` (with `bin_dir` first on PATH), its words
        moved into this install; pip's own settings (the local index) pass through."""
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        operators = {"&&", "||", ";", "|"}
        words = list(lexer)
        moved = self.words(words)
        # a glob the README relies on (library_course_kiosk-*.whl) stays a glob
        script = " ".join(
            word if word in operators or re.fullmatch(r"[\w./-]*\*[\w./*-]*", word)
            else shlex.quote(word) for word in moved)
        env = self.service_environment({k: v for k, v in os.environ.items()
                                        if k.startswith("PIP_")})
        if bin_dir is not None:
            env["PATH"] = f"{bin_dir}:{env['PATH']}"
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"as root: {script}\n{done.stdout[-4000:]}{done.stderr}"
        return done.stdout

    def _as_user(self, command: list[str], env: Mapping[str, str], cwd: Path | str,
                 stdin: str | None, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", self.user, "--", *command], cwd=cwd,
                              env=self.service_environment(env), input=stdin,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=None if stdin is not None else subprocess.DEVNULL)

    def sudo(self, line: str, stdin: str | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A README line `sudo -u kiosk COMMAND…`, run from / as the service user."""
        words = shlex.split(line, comments=True)
        assert words[:3] == ["sudo", "-u", PRODUCTION_USER], line
        return self._as_user(self.words(words[3:]), {}, "/", stdin, timeout)

    def systemd_run(self, words: list[str], stdin: str | None = None,
                    timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`systemd-run [--pipe --wait --collect] -p User=… -p EnvironmentFile=… -p
        StateDirectory=… -E K=V COMMAND…` as systemd runs it: COMMAND as that user from /, its
        environment the file's (read as root) and the -E pairs; the state directory made."""
        assert words[0] == "systemd-run", words
        words, env, user = self.words(words[1:]), {}, None
        while words and words[0].startswith("-"):
            option = words.pop(0)
            if option in ("--pipe", "--wait", "--collect"):
                continue
            value = words.pop(0)
            if option == "-E":
                key, _, val = value.partition("=")
                env[key] = val
                continue
            assert option == "-p", f"systemd-run option {option} is not emulated"
            key, _, val = value.partition("=")
            if key == "User":
                user = val
            elif key == "EnvironmentFile":
                env = {**environment_file(Path(val)), **env}
            elif key == "StateDirectory":
                self.make_state_directory(val)
            else:
                raise AssertionError(f"systemd-run property {key} is not emulated")
        assert user == self.user, f"systemd-run runs as {user}, not the service user"
        return self._as_user(words, env, "/", stdin, timeout)

    def unit_command(self, unit: Unit) -> tuple[list[str], dict[str, str], Path | str]:
        """A unit's ExecStart as systemd starts it: the command, its environment (the
        EnvironmentFile read as root, then Environment=) and its working directory."""
        assert unit.user == PRODUCTION_USER, unit.user
        self.make_state_directory(unit.state_directory)
        env = {**environment_file(Path(self.word(unit.environment_file))),
               **{key: self.word(value) for key, value in unit.environment.items()}}
        cwd = self.word(unit.working_directory) if unit.working_directory else "/"
        return self.words(unit.exec_start), env, cwd

    def run_unit(self, unit: Unit, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command, env, cwd = self.unit_command(unit)
        return self._as_user(command, env, cwd, None, timeout)

    def start_unit(self, unit: Unit, log: Path) -> subprocess.Popen[bytes]:
        """A long-running unit, in its own process group (stop it with stop_process_group)."""
        command, env, cwd = self.unit_command(unit)
        with log.open("ab") as out:
            return subprocess.Popen(["runuser", "-u", self.user, "--", *command], cwd=cwd,
                                    env=self.service_environment(env), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)


# --- What changed -------------------------------------------------------------------------


def snapshot(root: Path, leave_out: tuple[Path, ...]) -> dict[str, tuple[int, int, int, int]]:
    """Every file and folder under `root` but those under `leave_out`: its mode, owner, size
    and modification time, to compare before and after."""
    found: dict[str, tuple[int, int, int, int]] = {}

    def walk(folder: Path) -> Iterator[Path]:
        for entry in os.scandir(folder):
            path = Path(entry.path)
            if any(path == skip for skip in leave_out):
                continue
            yield path
            if entry.is_dir(follow_symlinks=False):
                yield from walk(path)

    for path in walk(root):
        st = path.lstat()
        found[path.relative_to(root).as_posix()] = (st.st_mode, st.st_uid, st.st_size,
                                                    st.st_mtime_ns)
    return found


def changes(before: Mapping[str, tuple[int, int, int, int]],
            after: Mapping[str, tuple[int, int, int, int]]) -> list[str]:
    made = [f"new: {name}" for name in sorted(set(after) - set(before))]
    gone = [f"gone: {name}" for name in sorted(set(before) - set(after))]
    changed = [f"changed: {name}" for name in sorted(set(before) & set(after))
               if before[name] != after[name]]
    return made + gone + changed
