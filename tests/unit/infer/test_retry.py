from __future__ import annotations

from mlpack.client.errors import ServerError, TransportError
from mlpack.infer.retry import Endpoints, RetryPolicy, blames_server


def test_delay_is_jittered_exponential_and_honours_retry_after() -> None:
    policy = RetryPolicy(retries=5, base=0.1, cap=1.0)
    for attempt in range(1, 8):
        assert 0 <= policy.delay(attempt) <= min(1.0, 0.1 * 2 ** (attempt - 1))
    assert policy.delay(1, retry_after=3.0) == 3.0


def test_what_is_retried() -> None:
    assert ServerError(503, "x").retryable and ServerError(429, "x").retryable
    assert ServerError(500, "x").retryable and not ServerError(400, "x").retryable
    assert not ServerError(404, "x").retryable
    assert blames_server(TransportError("x")) and blames_server(ServerError(503, "x"))
    assert not blames_server(ServerError(500, "model failed"))


def test_endpoints_avoid_a_failing_server() -> None:
    endpoints = Endpoints(["a", "b"])
    assert {endpoints.pick(), endpoints.pick()} == {"a", "b"}
    endpoints.failed("a")
    assert [endpoints.pick() for _ in range(4)] == ["b"] * 4
    endpoints.failed("b")
    assert endpoints.pick() == "a"  # both cooling down: the one free soonest
    endpoints.succeeded("a")
    assert "a" in {endpoints.pick() for _ in range(2)}
