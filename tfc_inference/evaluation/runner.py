"""The evaluation runner behind `examples/evaluate.py run` and `summarize`.

An evaluation applies one method (`registry`) to every run and every image; each
(run, image) item writes a real file that is decoded again:

  RESULTS_DIR/<method>/<run>/<image>.json     one per (run, image)
  RESULTS_DIR/<method>.csv                    means over images, one row per
                                              lambda (`rd_curves.RD_COLUMNS`)

Finished items are skipped, so an interrupted evaluation resumes where it
stopped. The ordered (run, image) work list is split deterministically into
shards (item k goes to shard k mod num_shards), so several processes or
machines can share one evaluation; `summarize` merges whatever per-image JSON
exists into the CSVs.
"""

import fnmatch
import glob as glob_lib
import json
import os
import re
import sys

import numpy as np

from tfc_inference.evaluation import options as options_lib
from tfc_inference.evaluation import rd_curves
from tfc_inference.evaluation import registry
from tfc_inference.util import output_paths
from tfc_inference.util import progress as progress_lib

RESULT_SUFFIX = ".json"
VARIANT_SEPARATOR = "@"

# Settings added after results were first recorded, with the value those records
# imply: a setting at this value is left out of new records, so that old and new
# records of the same protocol still compare as equal.
_IMPLIED_SETTINGS = {"compute_dtype": "float32"}


def find_runs(method, pattern, options):
  """Run names of `method` matching the glob `pattern`; a comma-separated pattern
  matches runs that match any of its globs. Without a pattern, the method's
  default glob among the runs on the zoo's curves (`checkpoints.curve_runs`: one
  per family and lambda), so that each lambda's row is one run's."""
  if not method.families:
    return method.list_runs(options, pattern)
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  root = options_lib.checkpoint_root(options)
  if pattern:
    available = checkpoints.list_runs(root)
  else:
    pattern, available = method.default_runs, checkpoints.curve_runs(root)
  globs = [glob for glob in pattern.split(",") if glob]
  matched = [name for name in available
             if any(fnmatch.fnmatchcase(name, glob) for glob in globs)]
  if not matched:
    raise options_lib.UserError(f"--runs {pattern!r} matches no run in {root}"
                             + (f" (available: {', '.join(available)})" if available
                                else ""))
  runs = []
  for name in matched:
    family = checkpoints.read_config(os.path.join(root, name)).get("model")
    if family not in method.families:
      continue
    if not os.path.exists(os.path.join(root, name, checkpoints.WEIGHTS_FILE)):
      options_lib.warn(f"run {name} has no {checkpoints.WEIGHTS_FILE} yet; skipped")
      continue
    runs.append(name)
  if not runs:
    raise options_lib.UserError(f"--runs {pattern!r} matches no usable run of "
                             f"{'/'.join(method.families)} (method {method.name}) in "
                             f"{root}; matched: {', '.join(matched)}")
  return runs


def load_run(method, name, options):
  if method.load_run is not None:
    return method.load_run(name, options)
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  model, config, run_name = checkpoints.load_run(
      name, options_lib.checkpoint_root(options))
  return options_lib.Run(name=run_name, lmbda=float(config["lmbda"]),
                         variant=config["model"], family=config["model"],
                         model=model, config=config)


def find_images(spec):
  """Image file or glob -> sorted list of (name, path); names are file stems."""
  if os.path.isfile(spec):
    paths = [spec]
  else:
    paths = sorted(p for p in glob_lib.glob(spec) if os.path.isfile(p))
  if not paths:
    raise options_lib.UserError(f"--images {spec!r} matches no file")
  images = {}
  for path in paths:
    name = os.path.splitext(os.path.basename(path))[0]
    if name in images:
      raise options_lib.UserError(f"two images are named {name!r}: {images[name]} and "
                               f"{path}; results are stored by name")
    images[name] = path
  return sorted(images.items())


def center_crop(image, crop, name="image"):
  if crop is None:
    return image
  height, width = crop
  if image.shape[0] < height or image.shape[1] < width:
    raise options_lib.UserError(f"{name}: {image.shape[0]}x{image.shape[1]} image is "
                             f"smaller than --crop {height}x{width}")
  top = (image.shape[0] - height) // 2
  left = (image.shape[1] - width) // 2
  return np.ascontiguousarray(image[top:top + height, left:left + width])


def read_image(path, crop=None):
  from tfc_inference.util import image_io  # pylint: disable=import-outside-toplevel
  image = image_io.read_image(path, warn=options_lib.warn)
  return center_crop(image, crop, os.path.basename(path))


def work_list(runs, image_names):
  """All (run, image) items in a fixed order: runs outer, images inner."""
  return [(run, image) for run in runs for image in image_names]


def shard(items, shard_index=0, num_shards=1):
  """Items k with k mod num_shards == shard_index (shards partition `items`)."""
  if num_shards < 1:
    raise options_lib.UserError(f"--num_shards must be >= 1, got {num_shards}")
  if not 0 <= shard_index < num_shards:
    raise options_lib.UserError(f"--shard_index must be in 0..{num_shards - 1}, got "
                             f"{shard_index}")
  return list(items[shard_index::num_shards])


def result_path(results_dir, method, run, image):
  return os.path.join(results_dir, method, run, image + RESULT_SUFFIX)


def _plain(value):
  """Numpy scalars/arrays -> JSON-friendly Python values."""
  if isinstance(value, dict):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  if isinstance(value, np.ndarray):
    return _plain(value.tolist())
  if isinstance(value, np.integer):
    return int(value)
  if isinstance(value, np.floating):
    return float(value)
  if isinstance(value, bytes):
    return value.hex()
  return value


def write_json(path, obj):
  def write_to(tmp_path):
    with open(tmp_path, "w") as f:
      json.dump(_plain(obj), f, indent=1, sort_keys=True)
      f.write("\n")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  output_paths.replace_atomically(path, write_to)


def _batches(names, images, batch_size):
  """Same-sized image names in groups of at most `batch_size` (stable order)."""
  groups = {}
  for name in names:
    groups.setdefault(images[name].shape, []).append(name)
  for group in groups.values():
    for i in range(0, len(group), batch_size):
      yield group[i:i + batch_size]


def run_method(method_name, results_dir, images_spec, runs_pattern=None,
               options=None, shard_index=0, num_shards=1, out=None):
  """Evaluates one method on this shard's (run, image) items; writes the CSV.

  Skips items whose JSON exists. Returns a dict: total (items of this shard),
  skipped (already done), done (newly computed), csv (summarize's output).
  """
  out = out or sys.stdout
  options = options or options_lib.Options()
  options.validate()
  method = registry.get_method(method_name)
  os.makedirs(results_dir, exist_ok=True)
  if method.name == "jpeg" and runs_pattern:
    print(f"note: --runs is ignored by method {method.name}", file=out)
  images = find_images(images_spec)
  paths = dict(images)
  runs = find_runs(method, runs_pattern, options)
  mine = shard(work_list(runs, [name for name, _ in images]), shard_index,
               num_shards)
  todo = [(run, image) for run, image in mine if not os.path.exists(
      result_path(results_dir, method.name, run, image))]
  print(f"{method.name}: {len(runs)} run(s) x {len(images)} image(s)"
        + (f", shard {shard_index + 1}/{num_shards}: {len(mine)} item(s)"
           if num_shards > 1 else "")
        + f"; {len(mine) - len(todo)} already done, {len(todo)} to do",
        file=out, flush=True)
  progress = progress_lib.Bar(len(mine), len(mine) - len(todo), out)
  settings = {key: _plain(getattr(options, key)) for key in method.settings
              if getattr(options, key) != _IMPLIED_SETTINGS.get(key, ())}
  crop = None if options.crop is None else "x".join(map(str, options.crop))
  loaded_images = {}
  batch_size = options.batch_images if method.batched else 1
  for run_name in runs:
    names = [image for run, image in todo if run == run_name]
    if not names:
      continue
    run = load_run(method, run_name, options)
    for name in names:
      if name not in loaded_images:
        loaded_images[name] = read_image(paths[name], options.crop)
    for batch_names in _batches(names, loaded_images, batch_size):
      batch = [(name, loaded_images[name]) for name in batch_names]
      results = method.encode(run, batch, options)
      if len(results) != len(batch):
        raise RuntimeError(f"method {method.name} returned {len(results)} "
                           f"results for {len(batch)} images")
      for name, result in zip(batch_names, results):
        record = dict(result)
        record.update(method=method.name, run=run.name, variant=run.variant,
                      family=run.family, image=name, lmbda=run.lmbda,
                      crop=crop, settings=settings)
        write_json(result_path(results_dir, method.name, run.name, name),
                   record)
        progress.update(1, f"{method.name} {run.name} {name}: bpp "
                        f"{record['bpp']:.4f} psnr {record['psnr']:.2f}")
  written = summarize(results_dir, [method.name], out=out, required=False)
  return dict(total=len(mine), skipped=len(mine) - len(todo), done=len(todo),
              csv=written)


def load_results(results_dir, methods=None):
  """Per-image records under results_dir: dict method -> list of dicts."""
  records = {}
  pattern = os.path.join(glob_lib.escape(results_dir), "*", "*",
                         "*" + RESULT_SUFFIX)
  for path in sorted(glob_lib.glob(pattern)):
    method = os.path.basename(os.path.dirname(os.path.dirname(path)))
    if methods is not None and method not in methods:
      continue
    try:
      with open(path) as f:
        record = json.load(f)
    except (OSError, ValueError) as error:
      options_lib.warn(f"{path}: unreadable ({error}); ignored")
      continue
    if not isinstance(record, dict) or record.get("lmbda") is None:
      options_lib.warn(f"{path}: not a per-image result; ignored")
      continue
    records.setdefault(method, []).append(record)
  return records


# Records written before 2026-12-06 named a hyperprior curve by family and hidden
# width ("mbt2018-num_filters=64"); the widths now vary along a family's curve.
_LEGACY_VARIANT = re.compile(r"^([a-z0-9_]+)-num_filters=\d+$")


def _curve_of(record):
  """The curve (variant) a per-image record belongs to."""
  variant = record.get("variant") or record.get("run") or "?"
  legacy = _LEGACY_VARIANT.match(variant)
  return legacy.group(1) if legacy else variant


def _check_group(label, records):
  """Warns when a curve mixes settings or has unequal images per lambda."""
  settings = {f"settings {json.dumps(r.get('settings'), sort_keys=True)}, "
              f"crop {r.get('crop')}" for r in records}
  if len(settings) > 1:
    options_lib.warn(f"{label}: results were made with different settings or crops "
                  f"({'; '.join(sorted(settings))})")
  counts, runs = {}, {}
  for record in records:
    lmbda = float(record["lmbda"])
    counts[lmbda] = counts.get(lmbda, 0) + 1
    runs.setdefault(lmbda, set()).add(record.get("run"))
  for lmbda, names in sorted(runs.items()):
    if len(names) > 1:
      options_lib.warn(f"{label}: lambda {lmbda:g} row averages several runs "
                    f"({', '.join(sorted(map(str, names)))})")
  if len(set(counts.values())) > 1:
    options_lib.warn(f"{label}: images per lambda differ ("
                  + ", ".join(f"{k:g}: {v}" for k, v in sorted(counts.items()))
                  + "); an evaluation is incomplete and its means cover other "
                  "images")


def write_csv(path, rows):
  """`rd_curves.write_rd_csv`, replacing `path` atomically."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  output_paths.replace_atomically(path, lambda tmp: rd_curves.write_rd_csv(tmp, rows))


def _format_value(value):
  return "-" if value is None else f"{value:.4g}"


def summarize(results_dir, methods=None, out=None, required=True):
  """Merges per-image JSON (from any shards) into RESULTS_DIR/<method>.csv.

  One CSV per method with rows of means over images per lambda. If a method's
  results hold several variants (e.g. sga on mbt2018 and on bmshj2018 runs, or
  several VAE runs), each variant gets RESULTS_DIR/<method>@<variant>.csv instead,
  since their lambdas are different curves. Returns dict CSV path -> rows.
  """
  out = out or sys.stdout
  if not os.path.isdir(results_dir):
    raise options_lib.UserError(f"--results_dir {results_dir!r} is not a directory")
  records = load_results(results_dir, methods)
  if not records and required:
    raise options_lib.UserError(f"no per-image results (<method>/<run>/<image>.json) in "
                             f"{results_dir}")
  written = {}
  for method in sorted(records):
    variants = {}
    for record in records[method]:
      variants.setdefault(_curve_of(record), []).append(record)
    if len(variants) == 1:
      groups = {method: next(iter(variants.values()))}
    else:
      print(f"note: {method} has results of {len(variants)} variants ("
            f"{', '.join(sorted(variants))}); writing one CSV per variant",
            file=out)
      groups = {f"{method}{VARIANT_SEPARATOR}{variant}": group
                for variant, group in sorted(variants.items())}
    for label, group in groups.items():
      _check_group(label, group)
      rows = rd_curves.aggregate(group)
      path = os.path.join(results_dir, label + ".csv")
      write_csv(path, rows)
      written[path] = rows
      print(f"{path}: {len(rows)} row(s) from {len(group)} image result(s)",
            file=out)
      for row in rows:
        print("  " + "  ".join(
            f"{key} {_format_value(row[key])}"
            for key in ("lmbda", "bpp", "psnr", "ms_ssim")), file=out)
  return written
