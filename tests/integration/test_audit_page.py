"""The audit log page: filters (action, actor, patron, institution, Belgian dates), newest
first, paged, readable details; only coordinators read it."""

from __future__ import annotations

import ast
import re
from datetime import datetime
from pathlib import Path

from kiosk.registry.academy_link import AcademyLink
from kiosk.registry.academy_sync import reconcile
from kiosk.registry.staff import record
from kiosk.registry.store import AuditEntry
from kiosk.staff import audit, labels
from tests.support.factories import add_patron
from tests.support.scim_server import scim_config, start_platform


def write(service, at: datetime, actor: str, action: str, **kwargs: object) -> None:
    with service.store.write() as s:
        record(s, at, actor, action, **kwargs)


def rows(response) -> list[str]:
    """The actions shown, top to bottom (third column)."""
    body = response.get_data(as_text=True)
    tbody = body.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in body else ""
    return [cells[2] for cells in (re.findall(r"<td>(.*?)</td>", tr, re.S)
                                   for tr in tbody.split("<tr>")[1:])]


def seeded(service) -> None:
    # Times are naive UTC. 2025-12-01 23:30 UTC is 00:30 on 2 December in Belgium.
    write(service, datetime(2025, 11, 30, 9, 0), "staff:an.peeters", "waiting_list_removed",
          subject="patron#7", institution="ANT", reason="Moved abroad", position=3)
    write(service, datetime(2025, 12, 1, 22, 30), "staff:els.maes", "waiting_list_removed",
          subject="patron#8", institution="KOR", reason="Asked to leave", position=1)
    write(service, datetime(2025, 12, 1, 23, 30), "staff:coordinator", "cap_changed",
          **{"from": 1000, "to": 2000, "promoted": 12, "reason": "New budget"})
    write(service, datetime(2025, 12, 2, 10, 0), "staff:coordinator", "waiting_list_moved",
          subject="patron#7", institution="ANT", **{"from": 5, "to": 1, "reason": "Desk"})


def test_newest_first_with_readable_details(service, staff_client) -> None:
    seeded(service)
    response = staff_client("coordinator").get("/en/staff/audit?institution=&until=2025-12-31")
    assert response.status_code == 200
    shown = rows(response)
    assert shown[:4] == ["Moved in the waiting list", "Cap changed",
                         "Removed from the waiting list", "Removed from the waiting list"]
    body = response.get_data(as_text=True)
    assert "<dt>Reason</dt><dd>New budget</dd>" in body
    assert "<dt>Promoted</dt><dd>12</dd>" in body
    assert "<td>2 Dec 2025, 00:30</td>" in body  # Belgian time (UTC+1 in winter)


def test_each_filter(service, staff_client) -> None:
    seeded(service)
    client = staff_client("coordinator")
    assert rows(client.get("/en/staff/audit?action=cap_changed")) == ["Cap changed"]
    assert len(rows(client.get("/en/staff/audit?actor=els.maes"))) == 1
    assert rows(client.get("/en/staff/audit?subject=patron%237")) == [
        "Moved in the waiting list", "Removed from the waiting list"]
    assert len(rows(client.get("/en/staff/audit?subject=7"))) == 2  # the number alone
    assert rows(client.get("/en/staff/audit?institution=KOR")) == [
        "Removed from the waiting list"]
    # Belgian days: 22:30 UTC on 1 Dec is still 1 Dec in Brussels, 23:30 UTC is 2 Dec.
    on_2nd = client.get("/en/staff/audit?since=2025-12-02&until=2025-12-02")
    assert rows(on_2nd) == ["Moved in the waiting list", "Cap changed"]
    on_1st = client.get("/en/staff/audit?since=2025-12-01&until=2025-12-01")
    assert rows(on_1st) == ["Removed from the waiting list"]
    combined = client.get("/en/staff/audit?action=waiting_list_removed&until=2025-11-30")
    assert "patron#7" in combined.get_data(as_text=True) and len(rows(combined)) == 1


def test_bad_dates_are_refused_with_a_message(service, staff_client) -> None:
    client = staff_client("coordinator")
    response = client.get("/en/staff/audit?since=yesterday")
    assert response.status_code == 422 and 'id="since-error"' in response.get_data(as_text=True)
    reversed_ = client.get("/en/staff/audit?since=2025-12-02&until=2025-12-01")
    assert reversed_.status_code == 422
    assert "before the first date" in reversed_.get_data(as_text=True)


def test_paged(service, staff_client) -> None:
    for minute in range(55):
        write(service, datetime(2025, 12, 3, 9, minute), "staff:coordinator", "cap_changed",
              **{"from": minute, "to": minute + 1, "promoted": 0, "reason": "r"})
    client = staff_client("coordinator")
    first = client.get("/en/staff/audit?action=cap_changed")
    assert len(rows(first)) == 50 and "Page 1 of 2" in first.get_data(as_text=True)
    assert "page=2" in first.get_data(as_text=True)
    second = client.get("/en/staff/audit?action=cap_changed&page=2")
    assert len(rows(second)) == 5
    assert "<dt>From</dt><dd>0</dd>" in second.get_data(as_text=True)  # the oldest last


def test_only_coordinators_read_the_audit_log(staff_client) -> None:
    for who in ("an.peeters", "els.maes", "it.support"):
        assert staff_client(who).get("/en/staff/audit").status_code == 403
    assert staff_client("coordinator", "fr").get("/fr/staff/audit").status_code == 200


# --- Every action and detail key the code writes has a label -------------------------------

KIOSK = Path(__file__).resolve().parents[2] / "kiosk"
# The audit writers, and where the action is among their positional arguments: record(s,
# at, actor, action), desk's _audit(s, staff, patron, action) and the seats' _assisted(s,
# staff, action, …).
WRITERS = {"record": 3, "_audit": 3, "_assisted": 2}
# The writers' own parameters, not keys of the detail.
NOT_DETAIL = {"where", "subject", "institution", "actor"}


def written() -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Actions and detail keys as the source writes them (name → first place), and the
    calls whose action is not a literal (only the writers passing theirs on may be)."""
    actions: dict[str, str] = {}
    keys: dict[str, str] = {}
    passed_on: list[str] = []
    for path in sorted(KIOSK.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in WRITERS or len(node.args) <= WRITERS[name]:
                continue
            where = f"{path.relative_to(KIOSK.parent)}:{node.lineno}"
            action = node.args[WRITERS[name]]
            if isinstance(action, ast.Constant) and isinstance(action.value, str):
                actions.setdefault(action.value, where)
            else:
                outer = node
                while not isinstance(outer, ast.FunctionDef):
                    outer = parents[outer]
                passed_on.append(f"{path.name}:{outer.name}")
            for keyword in node.keywords:
                if keyword.arg is not None:
                    if keyword.arg not in NOT_DETAIL:
                        keys.setdefault(keyword.arg, where)
                elif isinstance(keyword.value, ast.Dict):  # **{"from": …}
                    for key in keyword.value.keys:
                        if isinstance(key, ast.Constant):
                            keys.setdefault(key.value, where)
        # Details built as a dict first: detail["featured_cleared"] = …, detail = {"slug": …}
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                    and node.value.id == "detail" and isinstance(node.slice, ast.Constant):
                keys.setdefault(node.slice.value, f"{path.name}:{node.lineno}")
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "detail" for t in targets):
                    for key in node.value.keys:
                        if isinstance(key, ast.Constant):
                            keys.setdefault(key.value, f"{path.name}:{node.lineno}")
    return actions, keys, passed_on


def detail_values() -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """What the writers' calls pass as detail values that the page must read as words: the
    codes written as literals ((key, code) → first place; `"a" if x else "b"` and `x or "c"`
    count both), and the mappings built at run time (key → first place), whose keys are
    codes of their own ("counts": {"created": 2, "holders": 5})."""
    codes: dict[tuple[str, str], str] = {}
    built: dict[str, str] = {}
    for path in sorted(KIOSK.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in WRITERS or len(node.args) <= WRITERS[name]:
                continue
            where = f"{path.relative_to(KIOSK.parent)}:{node.lineno}"
            for keyword in node.keywords:
                if keyword.arg is None or keyword.arg in NOT_DETAIL:
                    continue
                value = keyword.value
                if isinstance(value, ast.Call) and getattr(value.func, "id", "") in (
                        "dict", "Counter"):
                    built.setdefault(keyword.arg, where)
                for part in ast.walk(value):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str) \
                            and part.value.isidentifier() \
                            and isinstance(value, (ast.Constant, ast.IfExp, ast.BoolOp)):
                        codes.setdefault((keyword.arg, part.value), where)
    return codes, built


def test_every_code_written_as_a_detail_value_has_a_label() -> None:
    codes, _built = detail_values()
    assert {("why", "sync"), ("how", "one_time"), ("reason", "merged"),
            ("part", "seats")} <= set(codes)  # the scan finds them
    missing = {f"{key}={code}": where for (key, code), where in codes.items()
               if code not in audit.CODED.get(key, {})}
    assert missing == {}


def test_every_detail_built_as_a_mapping_at_run_time_has_labels_for_its_keys() -> None:
    _codes, built = detail_values()
    assert "counts" in built  # the scan finds the academy sync's counts
    missing = {key: where for key, where in built.items() if key not in audit.NESTED_KEYS}
    assert missing == {}
    # The sync counts each outcome the platform can be asked for, and the two sides' sizes.
    assert set(labels.ACADEMY_CHANGES) | {"holders", "platform"} == set(labels.SYNC_COUNTS)


def stored_codes(value: object) -> set[str]:
    """The codes a detail holds: its keys, inside too, and its values that look like codes."""
    if isinstance(value, dict):
        return set(value) | {c for v in value.values() for c in stored_codes(v)}
    if isinstance(value, list):
        return {c for v in value for c in stored_codes(v)}
    return {value} if isinstance(value, str) and re.fullmatch(r"[a-z]+(_[a-z]+)*", value) \
        else set()


def test_an_academy_sync_reads_as_words_in_every_language(service, staff_client) -> None:
    service.set_cap(5, actor="test")
    _card, token = add_patron(service)
    service.claim(token, "excel-basics")
    platform = start_platform()
    try:
        with AcademyLink(scim_config(platform)) as link:
            report = reconcile(service.store, link, service.clock(), actor="cli")
    finally:
        platform.stop()
    assert report.counts["created"] == 1 and report.counts["holders"] == 1
    with service.store.read() as s:
        details = [e.detail for e in s.query(AuditEntry).filter(
            AuditEntry.action.in_(["academy_synced", "academy_user_changed"]))]
    codes = set().union(*(stored_codes(d) for d in details))
    assert {"created", "holders", "platform", "sync", "counts", "change", "why"} <= codes
    for lang in ("nl", "fr"):
        client = staff_client("coordinator", lang)
        body = client.get(f"/{lang}/staff/audit?action=academy_synced").get_data(as_text=True)
        body += client.get(f"/{lang}/staff/audit?action=academy_user_changed").get_data(
            as_text=True)
        # Each label and value as shown: a <dt>, a <dd>, and the "key: value" parts of a
        # <dd> that holds a mapping.
        cells = re.findall(r"<d[td]>(.*?)</d[td]>", body, re.S)
        shown = {piece.strip() for cell in cells for part in cell.split("; ")
                 for piece in (part, *part.split(": "))}
        assert len(cells) >= 6, body
        assert shown & codes == set(), (lang, sorted(shown))
    english = staff_client("coordinator").get("/en/staff/audit?action=academy_synced")
    assert "Accounts created: 1" in english.get_data(as_text=True)
    assert "Seat holders: 1" in english.get_data(as_text=True)


def test_every_action_written_anywhere_has_a_label() -> None:
    actions, _keys, passed_on = written()
    assert len(actions) >= 40  # the scan finds them: it is not vacuously true
    assert {"settings_changed", "offer_made", "course_added", "patron_export",
            "module_of_the_month_set", "terminal_added", "notices_resent"} <= set(actions)
    assert sorted(set(passed_on)) == ["desk.py:_audit", "seats.py:_assisted"]
    missing = {a: where for a, where in actions.items() if a not in labels.ACTIONS}
    assert missing == {}


def test_every_detail_key_written_anywhere_has_a_label() -> None:
    _actions, keys, _passed_on = written()
    assert {"before", "after", "part", "slug", "changed", "row_count", "starts",
            "ends"} <= set(keys)
    missing = {k: where for k, where in keys.items() if k not in labels.DETAIL_KEYS}
    assert missing == {}
    # And the settings inside "before"/"after" of settings_changed.
    for key in ("promotion", "offer_days", "fair_share", "opening_days", "verification",
                "pending_days", "closed_days"):
        assert key in labels.DETAIL_KEYS, key


def test_settings_and_course_changes_read_as_words(service, staff_client) -> None:
    write(service, datetime(2025, 12, 4, 9, 0), "staff:coordinator", "settings_changed",
          part="seats", before={"fair_share": False, "quota_ANT": None},
          after={"fair_share": True, "quota_ANT": 3}, promoted=0)
    write(service, datetime(2025, 12, 4, 9, 5), "staff:coordinator", "course_changed",
          slug="word-basics", changed=["hours", "title_nl"])
    write(service, datetime(2025, 12, 4, 9, 10), "registry", "offer_made",
          subject="patron#3", institution="ANT", until="2025-12-09T22:59:00")
    response = staff_client("coordinator").get("/en/staff/audit?since=2025-12-04&until=2025-12-04")
    body = response.get_data(as_text=True)
    assert rows(response) == ["Seat offered", "Course changed", "Settings changed"]
    assert "<dt>Part</dt><dd>How freed seats are given</dd>" in body
    assert "<dt>Before</dt><dd>Fair share: no; Quota ANT: –</dd>" in body
    assert "<dt>After</dt><dd>Fair share: yes; Quota ANT: 3</dd>" in body
    assert "<dt>Changed</dt><dd>Hours, Title nl</dd>" in body
    assert "<dt>Course</dt><dd>Word for beginners</dd>" in body
    assert "quota_ANT" not in body and "fair_share" not in body.split("<tbody>")[1]
    nl = staff_client("coordinator", "nl").get("/nl/staff/audit?since=2025-12-04&until=2025-12-04")
    assert rows(nl)[0] != "Seat offered"  # translated, not English
    fr = staff_client("coordinator", "fr").get("/fr/staff/audit?since=2025-12-04&until=2025-12-04")
    assert "\u00a0: oui" in fr.get_data(as_text=True)  # French puts a space before the colon


def test_a_key_of_the_form_name_code_reads_as_label_and_code() -> None:
    from flask import Flask
    from flask_babel import Babel

    app = Flask(__name__)
    Babel(app)
    with app.test_request_context():
        assert labels.detail_label("quota_ANT") == "Quota ANT"
        assert labels.detail_label("opening_days") == "Opening days"
        assert labels.detail_label("summary_fr") == "Summary fr"
        assert labels.detail_label("something_new") == "something new"
