"""schemathesis against the app: every operation, generated inputs, every response checked."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from tests.conftest import AUTH, TOKEN

# time_scale 0: predictions finish as soon as they are read again, so output links are exercised.
# One accepted token, so schemathesis's invalid-credentials probe is refused with 401.
schema = schemathesis.openapi.from_asgi(
    "/openapi.yaml",
    create_app(Settings(time_scale=0, api_tokens=(TOKEN,)), clock=ManualClock()),
)
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE])


@schema.parametrize()
@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers=AUTH)
