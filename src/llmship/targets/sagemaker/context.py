"""What every step of the SageMaker target shares: the state store, AWS clients, the clock.

The steps (plan, apply, status, teardown) are functions of this context, so each can be
read and tested alone; `SageMakerTarget` is this context with the Target methods on top.
Clients are made once per service and region; tests put stubbed ones in `_clients`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from llmship.aws.session import client, make_session
from llmship.config.schema import AwsConfig
from llmship.state import StateStore

# How long destroy waits for a deleted endpoint to be gone before revoking the grant its
# deletion still needs (deleting an endpoint in a VPC takes minutes).
DELETE_TIMEOUT_S = 900.0


class SageMakerContext:
    """The store (bound to the sagemaker owner), sessions and clients per region, and
    the injectable sleep, clocks and waiting limits."""

    name = "sagemaker"

    def __init__(
        self,
        store: StateStore,
        aws: AwsConfig,
        *,
        session=None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
        poll_seconds: float = 30.0,
        timeout_seconds: float = 3600.0,
        delete_timeout_seconds: float = DELETE_TIMEOUT_S,
    ):
        self.store, self.aws = store.owned_by(self.name), aws
        self._session = session
        self._sessions: dict[str, Any] = {}
        self._clients: dict[tuple[str, str], Any] = {}
        self.sleep, self.clock, self.now = sleep, clock, now
        self.poll_seconds, self.timeout_seconds = poll_seconds, timeout_seconds
        self.delete_timeout_seconds = delete_timeout_seconds

    def session(self, region: str | None = None):
        """The injected session for its own region, else one made from `aws` per region."""
        if self._session is not None and region in (None, "", self._session.region_name):
            return self._session
        key = region or ""
        if key not in self._sessions:
            aws = self.aws.model_copy(update={"region": region}) if region else self.aws
            self._sessions[key] = make_session(aws)
        return self._sessions[key]

    def client(self, service: str, region: str | None = None):
        """One client per service and region for this context's lifetime."""
        key = (service, region or "")
        if key not in self._clients:
            self._clients[key] = client(self.session(region), service)
        return self._clients[key]
