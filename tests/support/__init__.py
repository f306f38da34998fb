"""Plain helpers and factories for the tests: no fixtures here (those live in the conftest.py
files) and no test modules. Test modules import from `tests.support.…`, never from another
test module or a conftest (tests/unit/test_import_rules.py checks)."""
