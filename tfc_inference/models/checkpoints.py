"""Run directories: `config.json` plus `weights.npz` (weights and range-coding tables).

A run directory is named like the authors' runs, e.g.
`checkpoints/mbt2018-num_filters=64-num_latents=192-lmbda=0.001/`. `weights.npz`
holds every model weight under a stable key (see
`HyperpriorModel.named_weights`) and, under keys starting with `tables/`, the
range-coding tables, so that loading a model for coding costs milliseconds
instead of rebuilding the tables (~12 s).
Optimizer state lives only in the `train/` subfolder, which is never shipped.
"""

import json
import os
import pathlib
import re
import tempfile

import numpy as np

from tfc_inference.models import hyperprior
from tfc_inference.models.shipped_runs import BASE_RUN  # pylint: disable=unused-import
from tfc_inference.util import output_paths

WEIGHTS_FILE = "weights.npz"
CONFIG_FILE = "config.json"
_TABLE_PREFIX = "tables/"


def default_checkpoint_dir():
  """`$TFC_INFERENCE_CHECKPOINTS`, else the `checkpoints/` folder shipped beside the package."""
  env = os.environ.get("TFC_INFERENCE_CHECKPOINTS")
  if env:
    return env
  return str(pathlib.Path(__file__).resolve().parents[2] / "checkpoints")


# Run names are folder names like `mbt2018-num_filters=64-lmbda=0.01`; every
# compressed file stores one.
RUN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.,=+-]{0,199}")


def is_plain_run_name(name):
  """Whether `name` is a plain run name: a folder name, no path, no `..`."""
  return bool(RUN_NAME_PATTERN.fullmatch(name)) and ".." not in name


class CheckpointError(ValueError):
  """A run that cannot be found or loaded; the message is one line."""


def check_run_name(name):
  """Raises CheckpointError unless `name` can be written into a file header."""
  if not is_plain_run_name(name):
    raise CheckpointError(
        f"{name[:80]!r} cannot name a run: use letters, digits and _.,=+- "
        "(it is stored in every compressed file)")


def run_dir(run, checkpoint_dir=None, name_only=False):
  """Resolves a run name (or a path to a run directory) to its directory.

  With `name_only` (for run names read from files, which anyone can write),
  `run` must be a plain folder name and is looked up only in `checkpoint_dir`.
  """
  if name_only:
    if os.path.basename(run) != run or run in ("", ".", ".."):
      raise CheckpointError(f"{run!r} is not a run name")
  elif os.path.isdir(run) and os.path.exists(os.path.join(run, CONFIG_FILE)):
    return run
  path = os.path.join(checkpoint_dir or default_checkpoint_dir(), run)
  if not os.path.isfile(os.path.join(path, CONFIG_FILE)):
    available = list_runs(checkpoint_dir)
    hint = f" Available: {', '.join(available)}" if available else ""
    raise CheckpointError(f"no run {run!r} in {os.path.dirname(path)}.{hint}")
  return path


def list_runs(checkpoint_dir=None):
  root = checkpoint_dir or default_checkpoint_dir()
  if not os.path.isdir(root):
    return []
  return sorted(d for d in os.listdir(root)
                if os.path.exists(os.path.join(root, d, CONFIG_FILE)))


def _width(config):
  """(hidden filters, y channels) of a hyperprior run's config: the order in
  which the widest run of a lambda is chosen."""
  return (config.get("num_filters", 0), config.get("num_latents") or
          config.get("num_filters", 0))


def curve_runs(checkpoint_dir=None):
  """The runs on the zoo's rate-distortion curves, sorted by name: for each
  hyperprior family and lambda, the widest run (most hidden filters, then most y
  channels). A narrower run at the same lambda stays shipped as a smaller, faster
  model (`BASE_RUN`, the demo's and the speed benchmarks' default, has 64 hidden
  filters where the curve's lambda=0.01 run has 128) but is no point of the
  family's curve: results/kodak/<family>.csv has one point per lambda."""
  root = checkpoint_dir or default_checkpoint_dir()
  widest = {}
  for name in list_runs(root):
    config = read_config(os.path.join(root, name))
    if config.get("model") not in hyperprior.MODEL_CLASSES:
      continue
    key = (config["model"], float(config["lmbda"]))
    if key not in widest or _width(config) > widest[key][0]:
      widest[key] = (_width(config), name)
  return sorted(name for _, name in widest.values())


def run_at(family, lmbda, checkpoint_dir=None):
  """The name of the run of `family` (e.g. "mbt2018") on its curve at `lmbda` in
  `checkpoint_dir` (default: shipped): the widest run of that lambda (see
  `curve_runs`). Raises `CheckpointError` if there is none."""
  names = [name for name in curve_runs(checkpoint_dir)
           if name.startswith(f"{family}-num_filters=")
           and name.endswith(f"-lmbda={float(lmbda):g}")]
  if not names:
    raise CheckpointError(
        f"no run of {family} at lambda={float(lmbda):g} in "
        f"{checkpoint_dir or default_checkpoint_dir()}")
  return names[0]


def read_config(path):
  with open(os.path.join(path, CONFIG_FILE)) as f:
    return json.load(f)


def write_json_atomic(path, obj):
  text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
  output_paths.write_atomic(path, text.encode("utf-8"))


def write_config(path, config):
  write_json_atomic(os.path.join(path, CONFIG_FILE), config)


def build_model(config):
  """An unloaded model of `config`'s family and sizes: its kernels are zero until
  weights are assigned (as `load_run` does)."""
  cls = hyperprior.MODEL_CLASSES.get(config.get("model"))
  if cls is None:
    raise CheckpointError(f"unknown model family {config.get('model')!r}")
  model = cls(lmbda=config["lmbda"], num_filters=config["num_filters"],
              num_latents=config.get("num_latents"))
  model.build_all(initialize=False)  # load_run assigns every weight next
  return model


def save_weights(model, path, tables=None):
  """Writes `weights.npz` (weights + coding tables) atomically into run dir `path`."""
  arrays = dict(model.weight_arrays())
  if tables is None and hasattr(model, "coding_tables"):
    tables = model.coding_tables()
  for key, value in (tables or {}).items():
    arrays[_TABLE_PREFIX + key] = value
  with tempfile.NamedTemporaryFile(dir=path, delete=False, suffix=".npz") as f:
    np.savez(f, **arrays)
  os.chmod(f.name, 0o644)
  os.replace(f.name, os.path.join(path, WEIGHTS_FILE))


def load_arrays(path):
  weights_path = os.path.join(path, WEIGHTS_FILE)
  if not os.path.exists(weights_path):
    raise CheckpointError(f"{path} has no {WEIGHTS_FILE} (training not finished "
                          "or weights not exported yet)")
  with np.load(weights_path, allow_pickle=False) as data:
    arrays = {k: data[k] for k in data.files}
  weights = {k: v for k, v in arrays.items() if not k.startswith(_TABLE_PREFIX)}
  tables = {k[len(_TABLE_PREFIX):]: v for k, v in arrays.items()
            if k.startswith(_TABLE_PREFIX)}
  return weights, tables


def load_run(run, checkpoint_dir=None, name_only=False):
  """Loads a shipped/trained run. Returns (model, config, run_name).

  The model has its weights and, for range-coded families, its coding tables.
  `name_only`: see `run_dir`.
  """
  path = run_dir(run, checkpoint_dir, name_only)
  check_run_name(os.path.basename(os.path.normpath(path)))
  config = read_config(path)
  model = build_model(config)
  weights, tables = load_arrays(path)
  model.set_weight_arrays(weights)
  if hasattr(model, "load_coding_tables"):
    model.load_coding_tables(tables if tables else model.coding_tables())
  return model, config, os.path.basename(os.path.normpath(path))
