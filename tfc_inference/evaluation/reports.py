"""Comparing R-D curves: the `bd_rate` and `plot` commands of `examples/evaluate.py`.

Curves are CSVs of `rd_curves` (ours, published ones, or another codec's); BD-rate
is in percent of the first curve's rate, BD-PSNR in dB.
"""

import os
import sys

import numpy as np

from tfc_inference.evaluation import options as options_lib
from tfc_inference.evaluation import plots
from tfc_inference.evaluation import rd_curves


def read_curve(path, quality="psnr"):
  try:
    return rd_curves.read_curve(path, quality)
  except ValueError as error:
    raise options_lib.UserError(str(error)) from None


def bd_rate_command(path_a, path_b, out=None):
  """Prints BD-rate (%) and BD-PSNR (dB) of curve B relative to curve A.

  Returns (bd_rate, bd_psnr); either is None when not computable (e.g. the
  curves do not overlap in that axis); raises UserError if neither is.
  """
  out = out or sys.stdout
  rate_a, psnr_a = read_curve(path_a)
  rate_b, psnr_b = read_curve(path_b)
  values, errors = [], []
  for fn in (rd_curves.bd_rate, rd_curves.bd_psnr):
    try:
      values.append(fn(rate_a, psnr_a, rate_b, psnr_b))
    except ValueError as error:
      values.append(None)
      errors.append(str(error))
  if all(v is None for v in values):
    raise options_lib.UserError(f"BD metrics of {path_b} vs {path_a}: {errors[0]}")
  bd_rate, bd_psnr = values
  print(f"B = {path_b}\nA = {path_a}", file=out)
  print("BD-rate of B relative to A: "
        + ("n/a" if bd_rate is None else f"{bd_rate:+.2f} %"), file=out)
  print("BD-PSNR of B relative to A: "
        + ("n/a" if bd_psnr is None else f"{bd_psnr:+.3f} dB"), file=out)
  return bd_rate, bd_psnr


def _has_column(path, name):
  """Whether `path` is a CSV with a header naming `name` with some values."""
  try:
    columns = rd_curves.read_rd_csv(path)
  except ValueError:
    return False
  return name in columns and bool(np.any(np.isfinite(columns[name])))


def _label(path):
  return os.path.splitext(os.path.basename(path))[0]


def _ms_ssim_db(values):
  return -10 * np.log10(np.maximum(1 - np.asarray(values, float), 1e-10))


def plot_command(csv_paths, out_dir, reference=None, out=None, title=None,
                 max_bpp=None):
  """R-D PNGs and the rate-savings figure; returns the written paths.

  Writes OUT_DIR/rd_psnr.png (PSNR vs bpp), OUT_DIR/rd_ms_ssim.png (MS-SSIM in
  dB, -10 log10(1 - MS-SSIM), vs bpp, for the CSVs with an ms_ssim column) and
  OUT_DIR/savings_psnr.png (rate savings vs PSNR relative to `reference`,
  default the first CSV), and prints each curve's BD-rate vs the reference.
  `title` (the protocol) heads every figure; `max_bpp` ends the rate axis.
  """
  out = out or sys.stdout
  if not csv_paths:
    raise options_lib.UserError("give at least one --csv")
  reference = reference or csv_paths[0]
  paths = list(csv_paths) + ([reference] if reference not in csv_paths else [])
  labels = {}
  for path in paths:
    label = _label(path)
    labels[path] = label if label not in labels.values() else path
  curves = {labels[p]: read_curve(p) for p in paths}
  os.makedirs(out_dir, exist_ok=True)
  written = []
  path = os.path.join(out_dir, "rd_psnr.png")
  plots.plot_rd(curves, path, ylabel="PSNR (dB)", title=title, max_bpp=max_bpp)
  written.append(path)
  ms_ssim = {labels[p]: read_curve(p, "ms_ssim") for p in paths
             if _has_column(p, "ms_ssim")}
  if ms_ssim:
    path = os.path.join(out_dir, "rd_ms_ssim.png")
    plots.plot_rd({k: (bpp, _ms_ssim_db(v)) for k, (bpp, v)
                   in ms_ssim.items()}, path,
                  ylabel="MS-SSIM (dB) = -10 log10(1 - MS-SSIM)", title=title,
                  max_bpp=max_bpp)
    written.append(path)
  ref_label = labels[reference]
  ref_curve = curves[ref_label]
  others = {}
  for label, curve in curves.items():
    if label == ref_label:
      continue
    try:
      bd = rd_curves.bd_rate(*ref_curve, *curve)
    except ValueError as error:
      options_lib.warn(f"{label}: no savings vs {ref_label}: {error}")
      continue
    others[label] = curve
    print(f"BD-rate of {label} relative to {ref_label}: {bd:+.2f} %", file=out)
  if others:
    path = os.path.join(out_dir, "savings_psnr.png")
    plots.plot_savings(ref_curve, others, path, reference_label=ref_label,
                       title=title)
    written.append(path)
  for path in written:
    print(f"wrote {path}", file=out)
  return written
