"""Picking a route's target by weight: A/B tests and canaries.

Each request draws independently with probability weight / sum(weights); a seeded
chooser (gateway.seed) makes the sequence reproducible, which the tests rely on.
"""

from __future__ import annotations

import random
import threading

from llmship.config.gateway import GatewayTarget


class Chooser:
    def __init__(self, seed: int | None = None):
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def pick(self, targets: list[GatewayTarget]) -> GatewayTarget:
        live = [t for t in targets if t.weight > 0]
        if len(live) == 1:
            return live[0]
        with self._lock:
            return self._random.choices(live, weights=[t.weight for t in live])[0]
