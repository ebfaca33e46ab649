"""Iterative inference with method 'unoise' (see tfc_inference/cli/iterative_binary.py).

Usage:
  python examples/unoise.py compress RUNNAME INPUT [OUTPUT] [--sga_its 2000 ...]
  python examples/unoise.py decompress INPUT [OUTPUT]
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

from tfc_inference.cli import common  # pylint: disable=g-import-not-at-top
from tfc_inference.cli import iterative_binary  # pylint: disable=g-import-not-at-top

__doc__ = iterative_binary.define("unoise")  # pylint: disable=redefined-builtin
flags.adopt_module_key_flags(common)

if __name__ == "__main__":
  app.run(iterative_binary.main("unoise", __doc__))
