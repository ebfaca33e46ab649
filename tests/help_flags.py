"""Prints, per binary, the flags of its own modules that its --help leaves out.

Run as a script (one process, so TF is imported once): each binary is executed
as `__main__` with `absl.app.run` replaced by a no-op, its --help text is taken
from absl, and its flags are removed again before the next binary.
"""

import json
import os
import runpy
import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS
OWN_MODULES = ("tfc_inference", "examples")


def missing_from_help(path):
  sys.argv = [path]
  runpy.run_path(path, run_name="__main__")
  text = FLAGS.main_module_help()
  own = [flag.name for module, module_flags in FLAGS.flags_by_module_dict().items()
         if module.startswith(OWN_MODULES) or module == path
         or os.path.abspath(module).startswith(os.path.dirname(path))
         for flag in module_flags]
  missing = sorted(name for name in set(own)
                   if f"--{name}:" not in text and f"--[no]{name}:" not in text)
  for name in list(FLAGS):
    if name in own:
      delattr(FLAGS, name)
  return missing


if __name__ == "__main__":
  app.run = lambda main, *args, **kwargs: None
  print(json.dumps({os.path.basename(p): missing_from_help(p)
                    for p in sys.argv[1:]}))
