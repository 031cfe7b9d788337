"""The dashboard's HTTP client: each API refusal as a plain message, the key sent when set,
an API that cannot explain asked again, and no answer at all (a closed port) in words.
The servers here are stdlib threads on 127.0.0.1 answering canned JSON: fast, no model."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dashboard import client
from src.common.servers import free_port


def test_404_names_the_flight():
    r = client.from_status(404, {"detail": "no flight UA 9999 on 2013-08-15 in the timetable"})
    assert r.kind == "not_found" and not r.ok
    assert r.message == "No such flight: no flight UA 9999 on 2013-08-15 in the timetable"


def test_409_two_origins_offers_them():
    body = {"detail": "… ?origin=JFK or ?origin=EWR", "origins": ["JFK", "EWR"]}
    r = client.from_status(409, body)
    assert r.kind == "two_origins" and r.body["origins"] == ["JFK", "EWR"]
    assert r.message == "This number leaves from JFK or EWR that day: choose one."


def test_409_departed_shows_the_departure():
    body = {"detail": "UA 236 from JFK left at …", "departed": "2013-08-15T10:26:00Z"}
    r = client.from_status(409, {**body, "dep_delay": -4.0})
    assert r.kind == "departed"
    assert (
        r.message
        == "Already left at 2013-08-15 10:26 UTC (-4 min against the schedule): nothing to predict."
    )
    r = client.from_status(409, {"detail": "UA 1 was due at … and has not left"})
    assert r.kind == "conflict" and r.message == "UA 1 was due at … and has not left"


def test_other_statuses_in_words():
    r = client.from_status(422, {"detail": [{"loc": ["path", "carrier"], "msg": "bad pattern"}]})
    assert r.kind == "invalid" and r.message == "The API refused the request: carrier: bad pattern"
    assert client.from_status(401, {"detail": "x"}).kind == "unauthorized"
    r = client.from_status(503, {"detail": "the online store is empty"})
    assert r.kind == "unavailable" and r.message.endswith("the online store is empty")
    assert client.from_status(500, {}).message == "The API answered 500."


def test_a_closed_port_is_a_plain_message(monkeypatch):
    base = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("FD_API_URL", base)
    r = client.flight("UA", 236, date(2013, 8, 15))
    assert r.kind == "down" and r.status is None
    assert r.message.startswith(f"The API at {base} is not answering")
    assert "make serve" in r.message and "Traceback" not in r.message


@contextmanager
def canned(answers: list[tuple[int, dict]]) -> Iterator[tuple[str, list]]:
    """A loopback server giving `answers` in turn; yields its URL and the requests seen
    (path, X-API-Key)."""
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            seen.append((self.path, self.headers.get("X-API-Key")))
            status, body = answers[min(len(seen), len(answers)) - 1]
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_request_names_the_flight_and_sends_the_key(monkeypatch):
    monkeypatch.setenv("FD_API_KEY", "k3y")
    with canned([(200, {"delay_probability": 0.4})]) as (url, seen):
        r = client.flight(" ua ", 236, date(2013, 8, 15), "EWR", base=url)
    assert r.ok and r.body == {"delay_probability": 0.4} and r.status == 200
    assert seen == [("/flights/UA/236/2013-08-15?origin=EWR&explain=true", "k3y")]
    monkeypatch.delenv("FD_API_KEY")
    with canned([(200, {})]) as (url, seen):
        client.flight("UA", 236, date(2013, 8, 15), explain=False, base=url)
    assert seen == [("/flights/UA/236/2013-08-15", None)]


def test_an_api_that_cannot_explain_is_asked_again_without(monkeypatch):
    answers = [(501, {"detail": "no explanation: not a LightGBM model"}), (200, {"x": 1})]
    with canned(answers) as (url, seen):
        r = client.flight("UA", 236, date(2013, 8, 15), base=url)
    assert r.ok and r.body == {"x": 1}
    assert [p for p, _ in seen] == [
        "/flights/UA/236/2013-08-15?explain=true",
        "/flights/UA/236/2013-08-15",
    ]


def test_the_record_scored_is_asked_for_and_kept_when_asked_again(monkeypatch):
    answers = [(501, {"detail": "no explanation: not a LightGBM model"}), (200, {"x": 1})]
    with canned(answers) as (url, seen):
        client.flight("UA", 236, date(2013, 8, 15), "EWR", base=url, features=True)
    assert [p for p, _ in seen] == [
        "/flights/UA/236/2013-08-15?origin=EWR&features=true&explain=true",
        "/flights/UA/236/2013-08-15?origin=EWR&features=true",
    ]


@pytest.mark.parametrize("status", [404, 409, 500])
def test_errors_from_a_server_keep_its_body(status):
    with canned([(status, {"detail": "why", "origins": ["JFK", "EWR"]})]) as (url, _):
        r = client.get("/flights/UA/236/2013-08-15", base=url)
    assert r.status == status and r.body["detail"] == "why"


@pytest.mark.parametrize("base", ["127.0.0.1:8000", "localhost"])
def test_a_url_without_a_scheme_is_a_sentence_not_a_stack_trace(base):
    """FD_API_URL or FD_PROMETHEUS_URL written without http://: urllib refuses to build the
    request (ValueError), and the pages say so in words."""
    from dashboard import alerts

    result = client.get("/model", base=base)
    assert result.kind == "down" and result.message.startswith(f"The API at {base} is not")
    assert client.post("/predict", {}, base=base).kind == "down"
    assert alerts.fetch(base).problem.startswith(f"Prometheus is not reachable at {base}")
