"""Kubelet restart and image-pull back-off.

Mirrors ``k8s.io/client-go/util/flowcontrol.Backoff`` as the kubelet uses it:
a crashed container is restarted at once the first time, later ones wait
``base`` doubling up to ``cap``; a failed image pull waits ``base`` already
the first time (``immediate_first=False``); an entry untouched for twice the cap is forgotten (the container has
been healthy long enough). Operators and users recognise the resulting
ErrImagePull → ImagePullBackOff and CrashLoopBackOff rhythm, so the node
agents reproduce it rather than inventing their own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    base: float
    cap: float
    immediate_first: bool = True
    delay: float | None = None
    last_update: float = 0.0

    def next_wait(self, now: float) -> float:
        """Seconds to wait before retrying after a failure at ``now`` (0 = retry at once)."""
        if self.delay is None or now - self.last_update > 2 * self.cap:
            self.delay = self.base
            self.last_update = now
            if self.immediate_first:
                return 0.0
        wait = self.delay
        self.delay = min(self.delay * 2, self.cap)
        self.last_update = now + wait
        return wait

    def reset(self) -> None:
        self.delay = None
        self.last_update = 0.0


def go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration.String`` for whole seconds (``10s``, ``2m40s``, ``5m0s``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
