"""The README is a map, and a map must be true: every `kiosk …` command it shows exists with
the options named beside it, every repository path it names exists, every link inside it
lands on a heading, and its architecture tree lists exactly the modules under kiosk/."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from kiosk.cli import main as kiosk_cli

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# Paths the README may name, relative to the repository root.
REPO_PATH = re.compile(r"(?:kiosk|deploy|tests|benchmarks|templates|static|translations|tools)"
                       r"(?:/[\w.-]+)*/?")
SHELL_OPERATORS = {"&&", "||", ";", "|", "(", ")", "&", "$("}


@dataclass
class Readme:
    code_lines: list[str]   # fenced and indented code, continuation lines joined
    spans: list[str]        # inline code of the prose, line breaks made spaces
    links: list[str]        # markdown link targets of the prose
    headings: list[str]
    tree: list[str]         # the architecture tree's lines


def parse(text: str) -> Readme:
    code: list[list[str]] = []
    prose: list[str] = []
    headings: list[str] = []
    tree: list[str] = []
    fence: list[str] | None = None
    indented = False  # inside a code block made by indenting four spaces
    last_heading = ""
    for line in text.splitlines():
        if fence is not None:
            if line.startswith("```"):
                code.append(fence)
                if last_heading == "Architecture" and not tree:
                    tree = fence
                fence = None
            else:
                fence.append(line)
            continue
        if line.startswith("```"):
            fence = []
        elif line.startswith("    ") and (indented or not prose or not prose[-1].strip()):
            if not indented:
                code.append([])
            code[-1].append(line[4:])
            indented = True
            continue
        elif line.startswith("#"):
            last_heading = line.lstrip("#").strip()
            headings.append(last_heading)
        prose.append(line)
        indented = False
    body = "\n".join(prose)
    spans = [re.sub(r"\s+", " ", span) for paragraph in re.split(r"\n\s*\n", body)
             for span in re.findall(r"`([^`]+)`", paragraph)]
    links = re.findall(r"\]\(([^)\s]+)\)", body)
    return Readme(code_lines=[line for block in code for line in _joined(block)], spans=spans,
                  links=links, headings=headings, tree=tree)


def _joined(block: list[str]) -> Iterator[str]:
    """Shell lines continued with a backslash (PowerShell: a backtick) as one line."""
    pending = ""
    for line in block:
        if line.rstrip().endswith(("\\", "`")):
            pending += line.rstrip()[:-1] + " "
        else:
            yield pending + line
            pending = ""
    if pending:
        yield pending


def readme() -> Readme:
    return parse(README.read_text(encoding="utf-8"))


# --- Commands -------------------------------------------------------------------------------


def shell_invocations(line: str) -> list[list[str]]:
    """The arguments of each `kiosk` run on a shell line: the word `kiosk` where a command
    starts, or a path ending in bin/kiosk anywhere (sudo …, cron's user field, a venv)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        words = list(lexer)
    except ValueError:  # not shell (an unbalanced quote in prose-like code): plain words
        words = line.split("#", 1)[0].split()
    found: list[list[str]] = []
    current: list[str] | None = None
    for i, word in enumerate(words):
        if word in SHELL_OPERATORS:
            current = None
        elif current is not None:
            current.append(word)
        elif (word == "kiosk" and (i == 0 or words[i - 1] in SHELL_OPERATORS)) \
                or word.endswith("bin/kiosk"):
            current = []
            found.append(current)
    return found


def resolve(group: click.Group, words: list[str],
            at: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """The command path the words name under `group` (which is at `at` under `kiosk`), and
    what is wrong with them: a sub-command that does not exist, an option the command lacks."""
    path, problems = list(at), []
    command: click.Command = group
    for word in words:
        word = word.strip("[](),")
        if not word or word in ("…", "..."):
            continue
        if isinstance(command, click.Group) and not word.startswith("-"):
            sub = command.commands.get(word)
            if sub is None:
                problems.append(f"no command {' '.join([*path, word])!r}")
                return path, problems
            command = sub
            path.append(word)
        elif re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", word):
            option = word.split("=", 1)[0]
            known = {"--help"} | {name for param in command.params if isinstance(
                param, click.Option) for name in (*param.opts, *param.secondary_opts)}
            if option not in known:
                problems.append(f"{' '.join(path) or 'kiosk'} has no option {option}")
    return path, problems


def _group_at(path: list[str]) -> click.Group:
    command: click.Command = kiosk_cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert isinstance(command, click.Group)
    return command


def command_problems(doc: Readme) -> list[str]:
    problems: list[str] = []
    for line in doc.code_lines:
        for words in shell_invocations(line):
            problems += [f"{p} (code: {line.strip()!r})" for p in resolve(kiosk_cli, words)[1]]
    for span in doc.spans:
        if span.startswith("kiosk "):
            # A synopsis: `kiosk registry backup DEST | restore SRC [--force]` names the
            # alternatives beside the first command, in the same group.
            first, *others = span.split(" | ")
            path, found = resolve(kiosk_cli, first.split()[1:])
            if not found and others:
                group = _group_at(path[:-1])
                for other in others:
                    found += resolve(group, other.split(), tuple(path[:-1]))[1]
        else:
            found = [p for words in shell_invocations(span) for p in resolve(kiosk_cli, words)[1]]
        problems += [f"{p} (`{span}`)" for p in found]
    return problems


def test_every_kiosk_command_and_option_named_exists() -> None:
    problems = command_problems(readme())
    assert not problems, "\n".join(problems)


def test_the_readme_names_commands_at_all() -> None:
    """The parsing finds the commands (a change in the README's form would silently find none)."""
    doc = readme()
    shown = {" ".join(words[:2]) for line in doc.code_lines for words in shell_invocations(line)}
    assert {"demo", "registry upgrade", "terminal serve", "doctor --env-file"} <= shown, shown
    assert sum(span.startswith("kiosk ") for span in doc.spans) > 30


@pytest.mark.parametrize(("snippet", "problem"), [
    ("Run `kiosk registry frobnicate` hourly.", "no command 'registry frobnicate'"),
    ("`kiosk demo [--host H] [--colour C]`", "demo has no option --colour"),
    ("`kiosk registry backup DEST | restore SRC [--force] | vacuum`",
     "no command 'registry vacuum'"),
    ("`kiosk registry academy send | sync [--wet-run]`", "registry academy sync has no option "
                                                         "--wet-run"),
    ("```\nsudo -u kiosk /opt/kiosk/venv/bin/kiosk doctor --env-file F --tokn T\n```",
     "doctor has no option --tokn"),
    ("```\nkiosk registry member-system set ANT --host h \\\n    --pasword-file F\n```",
     "registry member-system set has no option --pasword-file"),
    ("Run:\n\n    .venv/bin/pip install -e . && .venv/bin/kiosk demos\n",
     "no command 'demos'"),
])
def test_a_wrong_command_is_caught(snippet: str, problem: str) -> None:
    """Negative controls: each of these, in a README, fails the test above."""
    problems = command_problems(parse(snippet))
    assert any(problem in p for p in problems), problems


def test_the_user_and_the_prose_are_not_commands() -> None:
    doc = parse("```\nuseradd --system --home-dir /var/lib/kiosk --shell /usr/sbin/nologin "
                "kiosk\ninstall -m 0640 -g kiosk a b\n30 2 * * * kiosk f=x && "
                "/opt/kiosk/venv/bin/kiosk registry backup \"$f\" && gpg --yes\n```\n"
                "The `kiosk` command; `kiosk.cfg`; `kiosk-terminal.service`.\n")
    assert command_problems(doc) == []
    assert [w for line in doc.code_lines for w in shell_invocations(line)] == [
        ["registry", "backup", "$f"]]


# --- Paths, links, the tree -----------------------------------------------------------------


def path_problems(doc: Readme) -> list[str]:
    named: set[str] = set()
    for text in (*doc.spans, *doc.code_lines):
        for word in text.split():
            word = word.split("::", 1)[0].strip("(),;:'\"")
            if REPO_PATH.fullmatch(word) and "/" in word:
                named.add(word)
    for link in doc.links:
        if not re.match(r"[a-z]+:|#", link):
            named.add(link.split("#", 1)[0])
    return [f"{path} does not exist" for path in sorted(named) if not (ROOT / path).exists()]


def test_every_repository_path_named_exists() -> None:
    problems = path_problems(readme())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("snippet", [
    "The rules are in `kiosk/nonexistent.py`.",
    "See [the notes](docs/NOTES.md).",
    "```\ncp deploy/linux/kiosk-nowhere.service /etc/systemd/system/\n```",
    "`tests/unit/test_nothing.py::test_x` checks it.",
])
def test_a_wrong_path_is_caught(snippet: str) -> None:
    assert path_problems(parse(snippet)), snippet


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_every_link_inside_the_readme_lands_on_a_heading() -> None:
    doc = readme()
    anchors = {slug(h) for h in doc.headings}
    wrong = [link for link in doc.links if link.startswith("#") and link[1:] not in anchors]
    assert not wrong, f"no heading for {wrong}; headings: {sorted(anchors)}"
    assert slug("Checking a terminal: `kiosk doctor`") == "checking-a-terminal-kiosk-doctor"


# A comment pointing at a README section: README, "The demo" (or README "…", README's "…").
README_REFERENCE = re.compile(r"README(?:,|'s)? [\"“]([^\"”]+)[\"”]")


def test_every_readme_section_the_code_points_to_exists() -> None:
    headings = set(readme().headings)
    wrong = []
    for folder in ("kiosk", "deploy", "benchmarks", "tests", "tools"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".service", ".timer", ".nginx", ".ps1", ".sh", ".md",
                                   ".example", ".html") or not path.is_file() \
                    or path == Path(__file__).resolve():  # this file's own examples
                continue
            for title in README_REFERENCE.findall(path.read_text(encoding="utf-8")):
                if title not in headings:
                    wrong.append(f"{path.relative_to(ROOT)}: {title!r}")
    assert not wrong, f"no such README heading: {wrong}"
    assert README_REFERENCE.findall('# (README, "The demo") and README "Try a card"') == [
        "The demo", "Try a card"]


def tree_paths(tree: list[str]) -> tuple[set[str], set[str]]:
    """The paths the tree names, and the directories it names with nothing listed under
    them (e.g. migrations/: what is inside is covered by the directory)."""
    named: set[str] = set()
    parents: list[tuple[int, str]] = []  # (indent, directory) of the open directories
    for line in tree:
        indent = len(line) - len(line.lstrip())
        if not line.strip() or indent >= 12:  # a description carried on to the next line
            continue
        names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        while parents and parents[-1][0] >= indent:
            parents.pop()
        prefix = parents[-1][1] if parents else ""
        for name in filter(None, (n.strip() for n in names.split(","))):
            named.add(prefix + name)
            if name.endswith("/"):
                parents.append((indent, prefix + name))
    leaves = {d for d in named if d.endswith("/") and not any(
        other != d and other.startswith(d) for other in named)}
    return named, leaves


def test_the_architecture_tree_names_what_exists() -> None:
    named, _ = tree_paths(readme().tree)
    assert "kiosk/registry/ledger.py" in named and "deploy/windows/" in named, sorted(named)
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"in the README's tree but not in the repository: {missing}"


def test_the_architecture_tree_lists_every_module() -> None:
    named, leaves = tree_paths(readme().tree)
    unlisted = []
    for module in sorted(ROOT.glob("kiosk/**/*.py")):
        path = module.relative_to(ROOT).as_posix()
        folder = path.rsplit("/", 1)[0] + "/"
        if path in named or any(path.startswith(leaf) for leaf in leaves) \
                or (module.name == "__init__.py" and folder in named):
            continue
        unlisted.append(path)
    assert not unlisted, f"add them to the README's architecture tree: {unlisted}"


def test_the_tree_parser_reads_groups_and_nesting() -> None:
    named, leaves = tree_paths([
        "kiosk/",
        "  a.py             what a does,",
        "                   carried on",
        "  sub/",
        "    b.py, c.py,",
        "    d.py           three modules",
        "    data/          a leaf",
        "  e.py",
        "tests/             top",
    ])
    assert named == {"kiosk/", "kiosk/a.py", "kiosk/sub/", "kiosk/sub/b.py", "kiosk/sub/c.py",
                     "kiosk/sub/d.py", "kiosk/sub/data/", "kiosk/e.py", "tests/"}
    assert leaves == {"kiosk/sub/data/", "tests/"}
