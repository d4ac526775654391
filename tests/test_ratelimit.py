"""`--rate-limits real`: the real service's per-token limits, 429 with Retry-After past them."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from mock_server.errors import ForcedError
from mock_server.ratelimit import RateLimiter
from tests.conftest import AUTH, CHECKED

SCHNELL = "/v1/models/black-forest-labs/flux-schnell/predictions"


class Ticker:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_then_the_per_minute_rate() -> None:
    now = Ticker()
    limiter = RateLimiter(now)
    for _ in range(100):
        limiter.take("a", "create")
    with pytest.raises(ForcedError) as info:
        limiter.take("a", "create")
    assert info.value.status_code == 429
    assert info.value.headers["Retry-After"] == "1"
    assert info.value.body()["detail"] == "Request was throttled. Expected available in 1 second."
    limiter.take("b", "create")  # another token has its own budget
    limiter.take("a", "other")  # and other requests another
    now.t = 0.1  # 600 a minute: one more create every 0.1 s
    limiter.take("a", "create")
    with pytest.raises(ForcedError):
        limiter.take("a", "create")


def test_off_by_default_and_429_over_http_when_real() -> None:
    quiet = create_app(Settings(), clock=ManualClock())
    assert quiet.state.ctx.rate_limiter is None
    app = create_app(Settings(rate_limits="real"), clock=ManualClock())
    # The buckets refill on the machine's clock: held still, a slow machine cannot refill them
    # while the 110 creates go out.
    app.state.ctx.rate_limiter.now = lambda: 0.0
    with TestClient(app, headers=AUTH) as client:
        client.event_hooks = CHECKED
        codes = [
            client.post(SCHNELL, json={"input": {"prompt": f"{i}"}}).status_code for i in range(110)
        ]
        assert codes == [201] * 100 + [429] * 10  # the burst of 100, then throttled
        throttled = client.post(SCHNELL, json={"input": {"prompt": "x"}})
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) >= 1
        assert throttled.json()["detail"].startswith("Request was throttled.")
        # Nothing was stored for a throttled create; reads have their own, larger budget.
        assert client.get("/__admin/health").json()["predictions"] == codes.count(201)
        other = client.post(
            SCHNELL, json={"input": {"prompt": "x"}}, headers={"Authorization": "Bearer other"}
        )
        assert other.status_code == 201
        client.post("/__admin/reset")
        assert client.post(SCHNELL, json={"input": {"prompt": "x"}}).status_code == 201


def test_other_calls_are_throttled_after_their_burst() -> None:
    """Reads have their own bucket: 3000 a minute with a burst of 500, then a 429 with
    Retry-After and Replicate's body; creates still have theirs."""
    app = create_app(Settings(rate_limits="real"), clock=ManualClock())
    app.state.ctx.rate_limiter.now = lambda: 0.0  # held still: nothing refills during the test
    with TestClient(app, headers=AUTH) as client:
        client.event_hooks = CHECKED
        codes = [client.get("/v1/predictions").status_code for _ in range(500)]
        assert codes == [200] * 500
        throttled = client.get("/v1/account")
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "1"
        assert throttled.json()["detail"] == (
            "Request was throttled. Expected available in 1 second."
        )
        assert client.get("/v1/predictions").status_code == 429
        assert client.post(SCHNELL, json={"input": {"prompt": "x"}}).status_code == 201
        assert client.get("/__admin/health").status_code == 200  # the admin API is not limited
        other = client.get("/v1/predictions", headers={"Authorization": "Bearer other"})
        assert other.status_code == 200  # another token has its own budget
