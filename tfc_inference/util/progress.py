"""Progress reports: remaining-time estimates and a text progress bar.

The first iteration of a `tf.function` loop includes tracing, which can take longer
than hundreds of later iterations, so `Eta` estimates from the iterations after the
first one only. `Bar` counts work items (e.g. images) of a long evaluation.
"""

import math
import sys
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


def format_clock(seconds):
  """'H:MM:SS', or '--:--:--' for an unknown (None, NaN) time."""
  if seconds is None or not math.isfinite(seconds):
    return "--:--:--"
  seconds = int(round(max(0., seconds)))
  return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Bar:
  """A text progress bar, one line per update, with an ETA from this session's
  pace (items finished before it started are not counted in the pace)."""

  def __init__(self, total, done=0, out=None, width=24):
    self.total, self.done, self.width = total, done, width
    self.out = out or sys.stdout
    self.new = 0
    self.start = time.time()

  def line(self, note=""):
    fraction = self.done / self.total if self.total else 1.
    filled = int(round(self.width * fraction))
    elapsed = time.time() - self.start
    eta = (elapsed / self.new * (self.total - self.done)) if self.new else None
    return (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/"
            f"{self.total} {100 * fraction:3.0f}%  elapsed "
            f"{format_clock(elapsed)}  ETA {format_clock(eta)}"
            + (f"  {note}" if note else ""))

  def update(self, count=1, note=""):
    self.done += count
    self.new += count
    print(self.line(note), file=self.out, flush=True)
