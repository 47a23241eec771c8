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


def _retries_until_give_up(
    policy: RetryPolicy, error: ServerError | TransportError
) -> tuple[int, float]:
    """Walk the policy as the job does (no sleeping): retries made and time they span."""
    attempt, failing_for = 0, 0.0
    while True:
        attempt += 1
        delay = policy.next_delay(error, attempt, failing_for)
        if delay is None:
            return attempt - 1, failing_for
        failing_for += delay
        assert attempt < 10_000


def test_default_policy_rides_out_a_30_second_outage() -> None:
    policy = RetryPolicy()
    for error in (TransportError("refused"), ServerError(503, "loading")):
        retries, span = _retries_until_give_up(policy, error)
        assert span >= 30.0 and span <= policy.retry_for
        assert retries < 100  # backoff grows: the outage costs few requests


def test_answered_errors_are_bounded_by_the_count_and_the_budget() -> None:
    assert _retries_until_give_up(RetryPolicy(retries=3), ServerError(500, "model failed"))[0] == 3
    assert _retries_until_give_up(RetryPolicy(retries=0), ServerError(500, "model failed"))[0] == 0
    assert _retries_until_give_up(RetryPolicy(), ServerError(400, "bad"))[0] == 0
    retries, span = _retries_until_give_up(
        RetryPolicy(retries=1000, retry_for=2.0), ServerError(500, "x")
    )
    assert span <= 2.0 and retries < 1000
    assert _retries_until_give_up(RetryPolicy(retry_for=0), TransportError("refused"))[0] == 0


def test_a_merged_batch_is_retried_only_for_server_trouble() -> None:
    policy = RetryPolicy()
    assert policy.next_delay(ServerError(500, "x"), 1, 0.0, merged=True) is None
    assert policy.next_delay(TransportError("x"), 1, 0.0, merged=True) is not None
