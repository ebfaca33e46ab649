"""Remaining-time estimates for optimization loops.

The first iteration of a `tf.function` loop includes tracing, which can take longer
than hundreds of later iterations, so the estimate is made from the iterations
after the first one only.
"""

import math
import time


class Eta:
  """Seconds left of `total` iterations, from the pace after the first one."""

  def __init__(self, total):
    self.total = total
    self.start = time.time()
    self._first_done = None  # (iterations done, time) once the first is over

  def elapsed(self):
    return time.time() - self.start

  def update(self, done):
    """Call with the number of iterations completed; returns seconds left (NaN
    until two iterations are done)."""
    now = time.time()
    if self._first_done is None:
      if done >= 1:
        self._first_done = (done, now)
      return math.nan
    first, then = self._first_done
    if done <= first:
      return math.nan
    return (now - then) / (done - first) * max(0, self.total - done)


def format_seconds(seconds):
  """'123s', or '?' for an unknown (NaN) time."""
  return "?" if not math.isfinite(seconds) else f"{seconds:.0f}s"
