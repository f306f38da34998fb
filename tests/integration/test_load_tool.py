"""The benchmark's load tool (`storm_support.drive_light`) against a real HTTP server on
loopback: every job sent once, in order, with the headers a terminal sends, each answer read
whole from its Content-Length. werkzeug's server closes the connection after each answer
(`Connection: close`): the tool then opens another, as a client must."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from tests.support.storm_support import USER_AGENT, Job, drive_light


@Request.application
def echo(request: Request) -> Response:
    """Answers what it was sent; /replay as a replayed key; /missing a 404."""
    body = json.dumps({"method": request.method, "path": request.path,
                       "terminal": request.headers.get("Authorization", ""),
                       "agent": request.headers.get("User-Agent", ""),
                       "patron": request.headers.get("X-Patron-Session", ""),
                       "key": request.headers.get("Idempotency-Key", ""),
                       "sent": request.get_data(as_text=True)})
    response = Response(body, status=404 if request.path == "/missing" else 200,
                        mimetype="application/json")
    if request.path == "/replay":
        response.headers["Idempotent-Replayed"] = "true"
    return response


@pytest.fixture
def server() -> Iterator[BaseWSGIServer]:
    srv = make_server("127.0.0.1", 0, echo, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    thread.join(timeout=10)


def test_every_job_is_sent_once_in_order_with_the_terminals_headers(server):
    jobs: list[Job] = [("POST", "/claims", f"patron-{i}", f"key-{i}", b'{"course": "x"}')
                       for i in range(40)]
    load = drive_light(f"http://127.0.0.1:{server.port}", jobs, ["t1", "t2"], connections=4)
    assert [o.index for o in load.outcomes] == list(range(40))
    assert {o.status for o in load.outcomes} == {200}
    for i, outcome in enumerate(load.outcomes):
        assert outcome.json == {"method": "POST", "path": "/claims",
                                "terminal": f"Bearer t{i % 2 + 1}", "agent": USER_AGENT,
                                "patron": f"patron-{i}", "key": f"key-{i}",
                                "sent": '{"course": "x"}'}
        assert outcome.attempts == 1 and not outcome.replayed
        assert 0 < outcome.latency == outcome.ended - outcome.started
    assert load.rate > 0 and load.client_cpu > 0


def test_each_answer_keeps_its_status_and_whether_it_was_replayed(server):
    jobs: list[Job] = [("GET", "/missing", "", "", b""), ("DELETE", "/replay", "p", "k", b""),
                       ("GET", "/healthz", "", "", b"")]
    load = drive_light(f"http://127.0.0.1:{server.port}", jobs, ["t"], connections=1)
    assert [(o.status, o.replayed) for o in load.outcomes] == [(404, False), (200, True),
                                                               (200, False)]
    assert load.outcomes[1].json["patron"] == "p"
    assert load.outcomes[2].json["patron"] == ""  # no session header where none is given
