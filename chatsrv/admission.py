"""Admission control for new WebSocket connections: a token bucket over the upgrade rate.

Past the rate, a connection is refused the moment it opens, with close 1013 and a retry
hint sized to the recent excess, so that a reconnect storm (every client of a restarted
server at once) is spread over time instead of being served all at the same instant.
It must never look at who connects or what they ask: it counts upgrades, nothing else.
"""
import math
import time


class Admission:
    """`admit()` is None for a connection to serve, else the CLOSE reason to refuse it with:
    `server busy: retry after N ms`. N is the time the bucket needs to serve the
    connections refused over the last second or so; clients add jitter of the same size."""

    DECAY = 1.0          # seconds over which the count of refused connections fades

    def __init__(self, rate: float, burst: float, clock=time.monotonic):
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.clock = clock
        self.tokens = self.burst
        self.at = clock()
        self.excess = 0.0        # refused connections, decaying
        self.refused = 0         # total, for /metrics

    def admit(self):
        if self.rate <= 0:
            return None
        now = self.clock()
        dt = now - self.at
        self.at = now
        self.tokens = min(self.burst, self.tokens + dt * self.rate)
        self.excess *= math.exp(-dt / self.DECAY)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        self.excess += 1.0
        self.refused += 1
        wait = max(self.excess, 1.0) / self.rate
        return f"server busy: retry after {min(60000, max(1, math.ceil(wait * 1000)))} ms"
