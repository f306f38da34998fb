#!/usr/bin/env python
"""Dashboard render time on a registry with many patrons (a figure, not a test).

Seeds a temporary SQLite registry with the demo data plus `--patrons` patrons (inserted in
bulk, one made-up password hash for all: hashing each would only time argon2), with sign-ups
spread over the last 120 days, seats up to the cap (some of them came off the waiting list),
the rest on the waiting list, and one to three courses each. Then logs the demo coordinator
in through the Flask test client and times the whole request for the dashboard page, each
aggregate CSV and the audited patron export.

    python benchmarks/dashboard.py [--patrons 20000] [--cap 2000] [--runs 10]

Prints the figures; exits 0. The programme's real scale is 165,000 patrons.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

COURSES_PER_PATRON = (1, 2, 3)


def make_app(instance: Path) -> Any:
    from kiosk.app import create_app

    return create_app({
        "SECRET_KEY": "dashboard-benchmark",
        "DATABASE_URL": f"sqlite:///{instance / 'registry.sqlite3'}",
        "WTF_CSRF_ENABLED": False,
        "SEED_DEMO": True,
    }, instance_path=str(instance))


def seed_patrons(service: Any, n: int, cap: int) -> None:
    from sqlalchemy import insert, select, update

    from kiosk.registry.passwords import PASSWORDS
    from kiosk.registry.store import Course, EnrolmentRow, Library, Patron, Place, Programme

    rng = random.Random(4)
    now = service.clock()
    one_hash = PASSWORDS.hash("benchmark-pass")
    with service.store.write() as s:
        libraries = s.scalars(select(Library.id)).all()
        courses = s.scalars(select(Course.id).where(Course.retired.is_(False))).all()
        start = s.scalar(select(Patron.id).order_by(Patron.id.desc()).limit(1)) or 0
        created = sorted(now - timedelta(seconds=rng.randrange(120 * 86400)) for _ in range(n))
        patrons, places, enrolments = [], [], []
        queue_no = 0
        for i, at in enumerate(created, start=start + 1):
            patrons.append({
                "id": i, "card_number": f"9{i:012d}", "email": f"p{i}@bench.example",
                "first_name": "Bench", "last_name": f"Patron {i}", "search_name": f"bench {i}",
                "birth_date": at.date().replace(year=1960), "postcode": "1000", "phone": "",
                "library_id": rng.choice(libraries), "language": rng.choice("nl fr en".split()),
                "password_hash": one_hash, "created_at": at, "last_active_at": at,
                "failed_logins": 0, "identity_checked_by": "", "must_change_password": False,
            })
            if i - start <= cap:
                # One in three seats came off the waiting list after 1 to 30 days.
                seated = min(now, at + timedelta(days=rng.randrange(1, 30))) \
                    if rng.random() < 1 / 3 else at
                places.append({"patron_id": i, "status": "seated", "queue_no": None,
                               "requested_at": at, "seated_at": seated})
            else:
                queue_no += 1
                places.append({"patron_id": i, "status": "waiting", "queue_no": queue_no,
                               "requested_at": at, "seated_at": None})
            for course in rng.sample(courses, rng.choice(COURSES_PER_PATRON)):
                enrolments.append({"patron_id": i, "course_id": course, "created_at": at})
        for rows, table in ((patrons, Patron), (places, Place), (enrolments, EnrolmentRow)):
            for k in range(0, len(rows), 5000):
                s.execute(insert(table), rows[k:k + 5000])
        seats = min(n, cap)
        s.execute(update(Programme).where(Programme.id == 1).values(
            cap=cap, seats_taken=seats, waiting=queue_no, next_queue_no=queue_no + 1))


def timed(client: Any, method: str, path: str, runs: int, **kwargs: Any) -> tuple[list[float], int]:
    samples = []
    size = 0
    for _ in range(runs):
        began = time.perf_counter()
        response = client.open(path, method=method, **kwargs)
        body = response.get_data()
        samples.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{method} {path} answered {response.status_code}")
        size = len(body)
    return samples, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patrons", type=int, default=20_000)
    parser.add_argument("--cap", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    with tempfile.TemporaryDirectory(prefix="kiosk-dashboard-bench-") as folder:
        app = make_app(Path(folder))
        service = app.extensions["registry_service"]
        began = time.perf_counter()
        seed_patrons(service, args.patrons, args.cap)
        print(f"seeded {args.patrons:,} patrons (cap {args.cap:,}) in "
              f"{time.perf_counter() - began:.1f} s")
        client = app.test_client()
        login = client.post("/nl/staff/login", data={"username": "coordinator",
                                                     "password": "demo-coordinator"})
        if login.status_code != 302:
            raise SystemExit("the demo coordinator could not log in")
        checks = [("GET", "/nl/staff/dashboard", args.runs, {}),
                  *[("GET", f"/nl/staff/dashboard/{kind}.csv", args.runs, {})
                    for kind in ("summary", "seats", "libraries", "courses", "signups")],
                  ("POST", "/nl/staff/dashboard/patron-export", 1,
                   {"data": {"reason": "benchmark"}})]
        print(f"{'request':<48} {'median ms':>10} {'max ms':>10} {'bytes':>12}")
        for method, path, runs, kwargs in checks:
            timed(client, method, path, 1, **kwargs)  # warm-up
            samples, size = timed(client, method, path, runs, **kwargs)
            print(f"{method + ' ' + path:<48} {statistics.median(samples):>10.1f} "
                  f"{max(samples):>10.1f} {size:>12,}")
        board_began = time.perf_counter()
        service.reports.dashboard("nl")
        print(f"{'(the figures alone: reports.dashboard)':<48} "
              f"{(time.perf_counter() - board_began) * 1000:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
