"""HTTP details of the service: header limit, no redirects, Content-Length, the auth scheme.

Over a real connection: httpx normalises what these tests need malformed (it refuses or
rewrites a bad Content-Length, and sends its own Host), so most requests go out as raw bytes.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from serving_support import copy_world, free_tcp_port, settings_for

from serving.errors import ErrorBody
from serving.guard import RequestGuard, bearer_matches, content_length, header_bytes
from serving.server import BentoServer

API_KEY = "http-details-key"
LIMIT = 16384  # CHURN_SERVE_MAX_HEADER_BYTES' default


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    closed: bool | None  # the server closed the connection after answering (None: not checked)

    def error(self) -> ErrorBody:
        assert self.headers["content-type"] == "application/json", self.body
        error = ErrorBody.model_validate(json.loads(self.body))
        assert error.status == self.status
        return error


def raw_request(url: str, head: bytes, body: bytes = b"", check_closed: bool = False) -> Answer:
    """Send ``head`` (request line and header lines, without the blank line) and ``body``
    byte for byte, and read one answer (then whether the server closed the connection)."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head + b"\r\n\r\n" + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer_body = response.read()
        closed = None
        if check_closed:
            sock.settimeout(5)
            try:
                closed = sock.recv(1) == b""
            except TimeoutError:
                closed = False
        return Answer(response.status, response.headers, answer_body, closed)


def post(url: str, path: str, body: bytes, *headers: bytes, length: bytes | None = None) -> Answer:
    declared = str(len(body)).encode() if length is None else length
    head = b"\r\n".join(
        [
            f"POST {path} HTTP/1.1".encode(),
            b"Host: churn.test",
            b"Content-Type: application/json",
            b"Content-Length: " + declared,
            *headers,
        ]
    )
    return raw_request(url, head, body)


@pytest.fixture(scope="module")
def keyed_server(world, tmp_path_factory) -> Iterator[str]:
    """The service over a copy of the world, with an API key."""
    env = copy_world(world, tmp_path_factory.mktemp("http_details") / "state")
    env["CHURN_SERVE_API_KEY"] = API_KEY
    with BentoServer(settings_for(env), port=free_tcp_port(), env=env) as url:
        yield url


@pytest.fixture(scope="module")
def customer_body(known_customers) -> bytes:
    return json.dumps({"customer_id": known_customers[0]}).encode()


AUTH = f"Authorization: Bearer {API_KEY}".encode()


# Request headers


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/predict", "/readyz"])
def test_eight_megabytes_of_headers_are_a_431_on_every_route(keyed_server, path):
    head = f"GET {path} HTTP/1.1\r\nHost: churn.test\r\nX-Big: ".encode() + b"a" * (8 << 20)
    answer = raw_request(keyed_server, head)
    assert answer.status == 431
    error = answer.error()
    assert (error.type, error.error) == (
        "headers_too_large",
        "request headers larger than 16384 bytes",
    )


@pytest.mark.slow
def test_many_small_headers_count_together(keyed_server, customer_body):
    many = [f"X-Part-{i}: {'b' * 1000}".encode() for i in range(20)]  # each one small
    answer = post(keyed_server, "/predict", customer_body, AUTH, *many)
    assert answer.status == 431
    assert answer.error().type == "headers_too_large"


@pytest.mark.slow
def test_headers_just_under_the_limit_are_served(keyed_server, customer_body):
    filler = b"X-Filler: " + b"c" * (LIMIT - 400)
    answer = post(keyed_server, "/predict", customer_body, AUTH, filler)
    assert answer.status == 200, answer.body
    assert json.loads(answer.body)["customer_id"] == json.loads(customer_body)["customer_id"]


# No redirect (so no Location built from the Host header)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "path", "meant"),
    [
        ("POST", "/predict/", "/predict"),
        ("POST", "/models/churn/predict/batch/", "/models/churn/predict/batch"),
        ("GET", "/readyz/", "/readyz"),
    ],
)
def test_a_trailing_slash_is_a_404_naming_the_route_not_a_redirect(
    keyed_server, customer_body, method, path, meant
):
    head = b"\r\n".join(
        [
            f"{method} {path}?x=1 HTTP/1.1".encode(),
            b"Host: evil.example.com",
            AUTH,
            b"Content-Type: application/json",
            b"Content-Length: " + str(len(customer_body)).encode(),
        ]
    )
    answer = raw_request(keyed_server, head, customer_body)
    assert answer.status == 404
    assert "location" not in answer.headers
    assert b"evil.example.com" not in answer.body
    error = answer.error()
    assert error.type == "not_found"
    assert error.error == f"no such endpoint: {method} {path}; did you mean {meant}?"


# Content-Length


@pytest.mark.slow
@pytest.mark.parametrize(
    "lengths",
    [[b"abc"], [b"-2"], [b"2", b"3"], [b"2", b"2"], [b"2, 2"], [b"99999999999999999999999"]],
    ids=["letters", "negative", "two-values", "repeated", "list", "overflow"],
)
def test_an_invalid_content_length_is_a_400_from_the_server(keyed_server, lengths):
    """httptools refuses these before the app: uvicorn's plain-text 400, connection closed
    (the one answer outside the error contract, see docs/serving.md)."""
    head = b"\r\n".join(
        [b"POST /predict HTTP/1.1", b"Host: churn.test", AUTH, b"Content-Type: application/json"]
        + [b"Content-Length: " + value for value in lengths]
    )
    answer = raw_request(keyed_server, head, b"{}", check_closed=True)
    assert answer.status == 400
    assert answer.body == b"Invalid HTTP request received."
    assert answer.closed
    # Nothing else is affected: the service answers the next request as usual.
    assert httpx.get(f"{keyed_server}/livez", timeout=10).status_code == 200


@pytest.mark.slow
def test_a_content_length_with_trailing_whitespace_is_read_as_its_number(
    keyed_server, customer_body
):
    length = str(len(customer_body)).encode() + b" "  # httptools passes the space on
    answer = post(keyed_server, "/predict", customer_body, AUTH, length=length)
    assert answer.status == 200, answer.body


def run_guard(headers: list[tuple[bytes, bytes]], path: str = "/predict") -> tuple[int, dict]:
    """One POST through the guard alone (no server), answered by an app that says 200."""

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    sent: list[dict] = []

    async def send(message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    asyncio.run(RequestGuard(app)(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


@pytest.mark.parametrize("value", [b"abc", b"-2", b"+2", b"", b"2, 2", "²".encode()])
def test_an_invalid_content_length_reaching_the_app_is_a_400_in_the_error_shape(value, monkeypatch):
    monkeypatch.delenv("CHURN_SERVE_API_KEY", raising=False)
    status, body = run_guard([(b"content-length", value)])
    assert status == 400
    assert body["type"] == "invalid_request"
    assert body["error"].startswith("invalid Content-Length")


def test_different_content_lengths_reaching_the_app_are_a_400(monkeypatch):
    monkeypatch.delenv("CHURN_SERVE_API_KEY", raising=False)
    status, body = run_guard([(b"content-length", b"2"), (b"content-length", b"3")])
    assert (status, body["error"]) == (
        400,
        "invalid Content-Length '2, 3': send one non-negative integer",
    )


def test_content_length_reading():
    assert content_length([]) is None
    assert content_length([(b"content-length", b" 2 ")]) == 2
    assert content_length([(b"content-length", b"2"), (b"content-length", b"2")]) == 2
    with pytest.raises(ValueError):
        content_length([(b"content-length", b"1e3")])


def test_header_bytes_count_the_lines_as_sent():
    assert header_bytes([(b"host", b"a"), (b"x", b"yz")]) == len(b"host: a\r\nx: yz\r\n")


# The Bearer scheme


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(keyed_server, customer_body, scheme):
    answer = post(
        keyed_server, "/predict", customer_body, f"Authorization: {scheme} {API_KEY}".encode()
    )
    assert answer.status == 200, answer.body


@pytest.mark.slow
@pytest.mark.parametrize(
    "authorization",
    ["bearer nope", f"BEARER {API_KEY}x", f"Basic {API_KEY}", API_KEY, f"Bearer{API_KEY}", ""],
)
def test_a_wrong_key_or_scheme_is_still_a_401(keyed_server, customer_body, authorization):
    answer = post(
        keyed_server, "/predict", customer_body, f"Authorization: {authorization}".encode()
    )
    assert answer.status == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="churn"'
    assert answer.error().type == "unauthorized"


def test_bearer_matching():
    key = b"k3y"
    assert bearer_matches(b"bearer k3y", key)
    assert bearer_matches(b"Bearer   k3y ", key)  # 1*SP before the credentials (RFC 9110)
    assert not bearer_matches(None, key)
    assert not bearer_matches(b"Bearer K3Y", key)  # the key itself is case-sensitive
    assert not bearer_matches(b"Bearerk3y", key)
    assert not bearer_matches(b"Token k3y", key)
