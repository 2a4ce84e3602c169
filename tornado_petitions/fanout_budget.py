"""How often the big channels get a counts frame: as often as ``--count-interval``, unless it costs the writers.

A counts tick writes one frame to every socket of the public and admin
feeds.  What one write costs depends on the machine (a loopback send is
~10 µs on one kernel, ~40 µs on another), so a fixed interval would hand
a different share of the process to the fan-out on each.  Instead the tick
is measured, and the interval is the shortest that keeps the fan-out within
its share of the process (``--fanout-budget``): a tick costs about the same
whatever the interval (one write per socket), so its share is cost / interval.
"""

from __future__ import annotations

# Weight of the newest tick in the smoothed cost: a few ticks to follow a change in the audience,
# and one slow tick (the machine busy elsewhere) does not double the interval.
SMOOTHING = 0.3


class FanoutBudget:
    """The interval of the big channels' counts frames: max(floor, min(ceiling, smoothed cost / share)).

    ``share`` is the part of the process the fan-out may take (0.2: a fifth);
    ``floor`` is ``--count-interval``, ``ceiling`` ``--max-count-interval``
    (raised to the floor if set below it).  Raises ValueError for a share
    that is not above 0.
    """

    def __init__(self, share: float, floor: float, ceiling: float) -> None:
        if not share > 0:
            raise ValueError("the fan-out budget must be a share of the process above 0")
        self.share = share
        self.floor = floor
        self.ceiling = max(floor, ceiling)
        self.cost: float | None = None  # smoothed CPU seconds of one tick's fan-out; None before the first
        self.interval = floor

    def record(self, seconds: float) -> float:
        """Take one tick's measured cost (CPU seconds); returns the interval until the next tick."""
        cost = seconds if self.cost is None else self.cost + SMOOTHING * (seconds - self.cost)
        self.cost = cost
        self.interval = max(self.floor, min(self.ceiling, cost / self.share))
        return self.interval
