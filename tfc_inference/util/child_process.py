"""Running a command in its own process and measuring it (for benchmarks)."""

import os
import subprocess
import tempfile
import time


def run_measured(args, cwd=None, env=None):
  """Runs `args` to completion; returns (wall seconds, peak RSS in MiB, output).

  The peak resident memory is the child's own (`os.wait4`), not the maximum over
  all children so far. Raises RuntimeError (with the output's tail) on failure.
  """
  start = time.time()
  with tempfile.TemporaryFile("w+") as out:
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                               cwd=cwd, env=dict(os.environ) if env is None else env)
    _, status, rusage = os.wait4(process.pid, 0)
    seconds = time.time() - start
    out.seek(0)
    text = out.read()
  if os.waitstatus_to_exitcode(status) != 0:
    raise RuntimeError(f"{' '.join(args)} failed:\n{text[-3000:]}")
  return seconds, rusage.ru_maxrss / 1024., text  # Linux reports KiB
