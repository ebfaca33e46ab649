"""Lossy bits-back coding, method 'bb_sga' (see tfc_inference/cli/bits_back_binary.py).

Usage:
  python examples/bb_sga.py compress RUNNAME INPUT [OUTPUT] [--side_info FILE]
  python examples/bb_sga.py decompress INPUT [OUTPUT] [--side_info_out FILE]
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

from tfc_inference.cli import bits_back_binary  # pylint: disable=g-import-not-at-top
from tfc_inference.cli import common  # pylint: disable=g-import-not-at-top

__doc__ = bits_back_binary.define("bb_sga")  # pylint: disable=redefined-builtin
flags.adopt_module_key_flags(common)
flags.adopt_module_key_flags(bits_back_binary)

if __name__ == "__main__":
  app.run(bits_back_binary.main("bb_sga", __doc__))
