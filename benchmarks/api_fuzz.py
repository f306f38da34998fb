#!/usr/bin/env python
"""The big Schemathesis run against the registry's served OpenAPI document, on PostgreSQL.

The same machinery as tests/integration/test_api_fuzz.py (the document, the hooks that mix in real
course slugs, sign-ups and log-ins, a real terminal token and patron session, the checks),
but N generated cases per operation (default 1,000: half what the document allows, half
what it forbids) and every failing case counted instead of stopping at the first one.

    python benchmarks/api_fuzz.py [--examples 1000] [--seed 0] [--operation claim] [-v]
        [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]

Needs PostgreSQL (KIOSK_TEST_POSTGRES or --admin-url; a kiosk_fuzz_* database is made and
dropped). Prints per operation: cases, answers by status, server errors (5xx other than the
documented 503 busy), schema violations (status code, content type, body or headers not as
documented) and other findings (a forbidden request accepted, a missing required header
not refused), with one reproducible example of each distinct finding; then one line
`server errors: N, schema violations: M -> PASS|FAIL`. Exit 0 after printing (1 with
--strict when something was found, 2 when it could not measure).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import hypothesis  # noqa: E402
import psycopg  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import APIOperation, Case, GenerationMode  # noqa: E402
from schemathesis.core.failures import Failure, FailureGroup, ServerError  # noqa: E402
from schemathesis.openapi.checks import (  # noqa: E402
    ContentDeserializationError,
    JsonSchemaError,
    MalformedMediaType,
    MissingContentType,
    MissingHeaders,
    UndefinedContentType,
    UndefinedStatusCode,
)

from tests.integration.test_api_fuzz import CHECKS, FuzzRegistry, activated, schema  # noqa: E402
from tests.support.factories import PG_ADMIN_URL  # noqa: E402

SCHEMA_VIOLATIONS = (UndefinedStatusCode, UndefinedContentType, MissingContentType,
                     MalformedMediaType, JsonSchemaError, MissingHeaders,
                     ContentDeserializationError)


@dataclass
class Tally:
    cases: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    server_errors: int = 0
    schema_violations: int = 0
    other: int = 0
    # Per distinct finding (kind, title): how many cases, and the first one (curl, message).
    findings: dict[tuple[str, str], list[Any]] = field(default_factory=dict)


def kind_of(failure: Failure) -> str:
    if isinstance(failure, ServerError):
        return "server error"
    if isinstance(failure, SCHEMA_VIOLATIONS):
        return "schema violation"
    return "other"


def fuzz_operation(registry: FuzzRegistry, operation: APIOperation, examples: int, seed: int,
                   verbose: bool) -> Tally:
    tally = Tally()
    strategy = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                         operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    # A measurement, not a test: no shrinking, no stop at the first failure (every case is
    # counted), and no health check may abort the count.
    @given(strategy)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    def run(case: Case) -> None:
        tally.cases += 1
        response = registry.call(case)
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            failures = [f for f in group.exceptions if isinstance(f, Failure)]
            if any(isinstance(f, ServerError) for f in failures):
                # The 500 itself, not a second finding: it is undocumented by nature.
                failures = [f for f in failures if not isinstance(f, UndefinedStatusCode)]
            kinds = {kind_of(f) for f in failures}
            tally.server_errors += "server error" in kinds
            tally.schema_violations += "schema violation" in kinds
            tally.other += "other" in kinds
            for failure in failures:
                entry = tally.findings.setdefault((kind_of(failure), failure.title),
                                                  [0, case.as_curl_command(), failure.message])
                entry[0] += 1
                if verbose:
                    print(f"    {kind_of(failure)}: {failure.title}: {case.as_curl_command()}")

    hypothesis.seed(seed)(run)()
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="cases per operation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--operation", action="append", default=[],
                        help="operationId to run (repeatable; default: all)")
    parser.add_argument("--admin-url", default=os.environ.get("KIOSK_TEST_POSTGRES",
                                                              PG_ADMIN_URL))
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    try:
        psycopg.connect(args.admin_url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        print(f"cannot measure: PostgreSQL not reachable at {args.admin_url}: {exc}")
        return 2

    operations = [result.ok() for result in schema.get_all_operations()]
    if args.operation:
        operations = [op for op in operations
                      if op.definition.raw.get("operationId") in args.operation]
    totals = Tally()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kiosk-fuzz-") as tmp:
        registry = FuzzRegistry.create(args.admin_url, Path(tmp))
        # A 500 is counted and shown once per distinct finding, not logged with its traceback.
        registry.app.logger.disabled = True
        try:
            with activated(registry):
                print(f"{len(operations)} operations, {args.examples} cases each "
                      f"(positive and negative), seed {args.seed}, PostgreSQL "
                      f"database {registry.database}")
                for operation in operations:
                    t0 = time.monotonic()
                    tally = fuzz_operation(registry, operation, args.examples, args.seed,
                                           args.verbose)
                    statuses = " ".join(f"{s}×{n}" for s, n in sorted(tally.statuses.items()))
                    print(f"{operation.label:<34} {tally.cases:>5} cases "
                          f"{time.monotonic() - t0:6.1f} s  server errors {tally.server_errors}"
                          f"  schema violations {tally.schema_violations}  other "
                          f"{tally.other}  [{statuses}]")
                    for (kind, title), (count, curl, message) in tally.findings.items():
                        first = message.strip().splitlines()[:6]
                        print(f"    {count:>5} × {kind}: {title}\n        {curl}")
                        for line in first:
                            print(f"        | {line}")
                    totals.cases += tally.cases
                    totals.server_errors += tally.server_errors
                    totals.schema_violations += tally.schema_violations
                    totals.other += tally.other
        finally:
            registry.close()
    found = totals.server_errors + totals.schema_violations
    print(f"total: {totals.cases} cases in {time.monotonic() - started:.0f} s; other "
          f"findings {totals.other}")
    print(f"server errors: {totals.server_errors}, schema violations: "
          f"{totals.schema_violations} -> {'FAIL' if found else 'PASS'}")
    return 1 if args.strict and (found or totals.other) else 0


if __name__ == "__main__":
    sys.exit(main())
