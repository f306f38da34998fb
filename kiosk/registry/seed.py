"""Load a programme into an empty registry: the demo's (kiosk/data/demo_data.json) or a real
one, read and checked by `programme_file` (`kiosk registry init`)."""

from __future__ import annotations

import calendar
import json
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select

from . import ledger
from .domain import DEFAULT_PENDING_DAYS
from .store import (
    THE_PROGRAMME,
    Category,
    Course,
    CourseText,
    Institution,
    Library,
    Programme,
    Staff,
    Store,
)


def load_demo_data(path: Path | None = None) -> dict[str, Any]:
    if path is not None:
        return json.loads(path.read_text(encoding="utf-8"))
    text = resources.files("kiosk.data").joinpath("demo_data.json").read_text(encoding="utf-8")
    return json.loads(text)


def seed(store: Store, data: dict[str, Any], today: date, cap: int | None = None) -> bool:
    """Fill an empty registry; answers False (and changes nothing) if it already has data."""
    with store.write() as s:
        if s.scalar(select(Programme.id).where(THE_PROGRAMME)) is not None:
            return False
        prog = data["programme"]
        ledger.create_programme(s, cap=cap if cap is not None else prog["cap"],
                                academy_url=prog["academy_url"], ends_on=prog.get("ends_on"),
                                practice=data.get("demo") is True)
        for inst in data["institutions"]:
            row = Institution(code=inst["code"], card_prefix=inst["card_prefix"],
                              names=inst["name"],
                              verification=inst.get("verification", "open"),
                              pending_days=inst.get("pending_days", DEFAULT_PENDING_DAYS))
            row.libraries = [Library(code=lib["code"], name=lib["name"])
                             for lib in inst["libraries"]]
            s.add(row)
        for pos, cat in enumerate(data["categories"]):
            s.add(Category(code=cat["code"], names=cat["name"], position=pos))
        s.flush()
        # The module of the month is featured for the current calendar month.
        first = today.replace(day=1)
        last = today.replace(day=calendar.monthrange(today.year, today.month)[1])
        for pos, c in enumerate(data.get("courses", [])):
            featured = c["slug"] == data.get("module_of_the_month")
            course = Course(slug=c["slug"], category_code=c["category"], hours=c["hours"],
                            position=pos, retired=False,
                            featured_from=first if featured else None,
                            featured_until=last if featured else None)
            course.texts = [CourseText(lang=lang, title=c["title"][lang],
                                       summary=c["summary"][lang]) for lang in c["title"]]
            s.add(course)
        return True


def is_seeded(store: Store) -> bool:
    with store.read() as s:
        return s.scalar(select(Programme.id)) is not None


def seed_staff(store: Store, data: dict[str, Any], now: datetime) -> int:
    """The demo's staff accounts, once, into a registry that has none; answers how many were
    made. The file holds argon2 hashes (the demo passwords are in the README), so seeding
    costs no hashing."""
    with store.write() as s:
        if s.scalar(select(Staff.id).limit(1)) is not None:
            return 0
        libraries = dict(s.execute(select(Library.code, Library.id)).all())
        institutions = dict(s.execute(select(Institution.code, Institution.id)).all())
        for person in data.get("staff", []):
            s.add(Staff(username=person["username"], display_name=person["name"],
                        role=person["role"],
                        institution_id=institutions.get(person.get("institution") or ""),
                        library_id=libraries.get(person.get("library") or ""),
                        password_hash=person["password_hash"], created_at=now,
                        failed_logins=0))
        return len(data.get("staff", []))
