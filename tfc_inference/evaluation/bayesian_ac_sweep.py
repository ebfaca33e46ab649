"""Rate-distortion sweeps of one Bayesian AC model and its baselines.

`rate_distortion` codes images with every method at every setting of its grid,
writing and decoding a real file each time: Bayesian AC (one rate penalty lambda
per point; with centroid decoding too where the run has centroids), uniform
steps, k-means levels (`coding.bayesian_ac_image`) and JPEG
at a quality setting (`jpeg.code_image`). `channel_report` says, per latent
channel, how many bits it takes and whether it has collapsed.

Units: bpp from real file sizes (header included), est_bpp from the symbols'
information content under the tables, PSNR in dB, MS-SSIM linear, times in seconds,
bits per latent and KL per latent in bits.
"""

import csv
import math
import os

import numpy as np

from tfc_inference.coding import bayesian_ac
from tfc_inference.coding import bayesian_ac_image
from tfc_inference.coding import bayesian_ac_tables
from tfc_inference.evaluation import jpeg
from tfc_inference.evaluation import options
from tfc_inference.models import checkpoints

ALL_METHODS = ("bayesian_ac", "bayesian_ac_centroids", "uniform", "kmeans", "jpeg")


def available_methods(codec):
  """`ALL_METHODS` less those the run's coding tables cannot code (centroid
  decoding needs fitted centroids)."""
  return tuple(m for m in ALL_METHODS if m != "bayesian_ac_centroids"
               or codec.tables.centroids is not None)


DEFAULT_JPEG_QUALITIES = options.DEFAULT_JPEG_QUALITIES


# A channel whose mean KL is below this many bits per latent is reported collapsed.
COLLAPSED_KL_BITS = 0.01


def jpeg_point(image, quality, name=None):
  """JPEG (4:2:0) at `quality`: result dict like `ImageCodec.compress`."""
  return dict(jpeg.code_image(image, quality), method="jpeg", image=name,
              setting_name="quality", setting=float(quality))


_AGGREGATED = ("bpp", "psnr", "ms_ssim", "est_bpp", "mse", "kl_bpp", "seconds",
               "decode_seconds")
_CSV_COLUMNS = ("bpp", "psnr", "ms_ssim", "est_bpp", "mse", "kl_bpp",
                "encode_seconds", "decode_seconds", "num_images")


def rate_distortion(codec, images, lambdas=None, uniform_steps=None,
                    kmeans_levels=None, jpeg_qualities=DEFAULT_JPEG_QUALITIES,
                    methods=None, print_fn=None, image_done_fn=None):
  """Sweeps every method's setting on every image with the one model.

  Args:
    codec: an `ImageCodec`.
    images: list of (name, uint8 image).
    lambdas: Bayesian AC lambdas (any values; default: the fitted grid).
    uniform_steps, kmeans_levels: subsets of the fitted grids (default: all).
    jpeg_qualities: JPEG qualities.
    methods: subset of `ALL_METHODS` (default: `available_methods(codec)`).
    print_fn: progress messages.
    image_done_fn: called with (name, list of that image's result dicts).
  Returns:
    dict with `results` (all per-image result dicts), `rows` (method -> list of
    per-setting means, see `aggregate`) and `channels` (see `channel_report`).
  """
  say = print_fn or (lambda message: None)
  methods = available_methods(codec) if methods is None else tuple(methods)
  unknown = set(methods) - set(ALL_METHODS)
  if unknown:
    raise ValueError(f"unknown method(s) {sorted(unknown)}; known: {ALL_METHODS}")
  settings = {
      "bayesian_ac": list(codec.tables.settings("bayesian_ac")
                          if lambdas is None else lambdas),
      "uniform": list(codec.tables.settings("uniform")
                      if uniform_steps is None else uniform_steps),
      "kmeans": list(codec.tables.settings("kmeans")
                     if kmeans_levels is None else kmeans_levels),
      "jpeg": list(jpeg_qualities),
  }
  settings["bayesian_ac_centroids"] = settings["bayesian_ac"]
  for quantizer in ("uniform", "kmeans", "bayesian_ac_centroids"):  # fail early
    if quantizer in methods:
      for setting in settings[quantizer]:
        codec.table_index(quantizer, float(setting))
  results = []
  lambdas = [float(v) for v in settings["bayesian_ac"]]
  bits = np.zeros([len(lambdas), codec.num_channels])
  point_bits = np.zeros([len(lambdas), codec.num_channels])
  kl = np.zeros([codec.num_channels])
  latents = 0
  for name, image in images:
    posterior = codec.analyze(image)
    image_results = []
    symbols_at = {}  # lambda -> Bayesian AC's Quantized, reused for centroids
    for method in methods:
      for setting in settings[method]:
        if method == "jpeg":
          result = jpeg_point(image, setting, name)
        else:
          reused = symbols_at.get(float(setting))
          reused = (codec.with_centroids(reused)
                    if method == "bayesian_ac_centroids" and reused else None)
          _, result, quantized = codec.compress(image, method, float(setting),
                                                posterior=posterior, name=name,
                                                quantized=reused)
          if method == "bayesian_ac":
            symbols_at[float(setting)] = quantized
            i = lambdas.index(float(setting))
            bits[i] += bayesian_ac_tables.channel_bits(
                quantized.symbols,
                codec.distributions(method, quantized.table_index))
            point_bits[i] += bayesian_ac_tables.channel_major(
                bayesian_ac.symbols_to_code_points(quantized.symbols)[1]).sum(axis=1)
        image_results.append(result)
    positions = posterior.mu.shape[0] * posterior.mu.shape[1]
    kl += posterior.kl_bits().reshape(positions, -1).sum(axis=0)
    latents += positions
    results.extend(image_results)
    say(f"{name}: " + "  ".join(
        f"{m} {min(r['bpp'] for r in image_results if r['method'] == m):.3f}.."
        f"{max(r['bpp'] for r in image_results if r['method'] == m):.3f} bpp"
        for m in methods))
    if image_done_fn:
      image_done_fn(name, image_results)
  channels = None
  if "bayesian_ac" in methods and latents:
    channels = channel_report(lambdas, bits / latents, kl / latents, latents,
                              len(images), point_bits / latents)
  return dict(results=results, rows=aggregate(results), channels=channels)


def channel_report(lambdas, bits_per_latent, kl_bits_per_latent, latents,
                   num_images, code_point_bits_per_latent=None):
  """JSON-able per-channel rate (bits/latent, per lambda) against mean KL (bits).

  `bits_per_latent` and `code_point_bits_per_latent` are float [len(lambdas), N];
  the second (the paper's rate R(xi)) may be left out.
  """
  if code_point_bits_per_latent is None:
    code_point_bits_per_latent = np.full_like(bits_per_latent, np.nan)
  order = np.argsort(-kl_bits_per_latent, kind="stable")
  return dict(
      lambdas=list(lambdas), num_images=int(num_images),
      latents_per_channel=int(latents),
      collapsed_kl_bits=COLLAPSED_KL_BITS,
      collapsed_channels=[int(c) for c in np.nonzero(
          kl_bits_per_latent < COLLAPSED_KL_BITS)[0]],
      channels=[dict(channel=int(c), kl_bits_per_latent=float(kl_bits_per_latent[c]),
                     bits_per_latent=[float(b) for b in bits_per_latent[:, c]],
                     code_point_bits_per_latent=[
                         float(b) for b in code_point_bits_per_latent[:, c]],
                     collapsed=bool(kl_bits_per_latent[c] < COLLAPSED_KL_BITS))
                for c in order],
      note="bits_per_latent: ideal code length under the per-channel symbol "
           "table, one entry per lambda; code_point_bits_per_latent: mean R(xi), "
           "the significant bits of the chosen code points (never larger at a "
           "larger lambda); kl_bits_per_latent: mean "
           "KL(q(y|x) || N(0, 1)) in bits over the evaluated latents. Channels "
           "are sorted by decreasing KL.")


def aggregate(results):
  """Method -> rows (sorted by setting) of means over images of `_AGGREGATED`."""
  groups = {}
  for result in results:
    groups.setdefault((result["method"], float(result["setting"])), []).append(result)
  rows = {}
  for (method, setting), group in sorted(groups.items()):
    row = {bayesian_ac_image.PARAMETER_NAMES[method]: setting, "num_images": len(group)}
    for key in _AGGREGATED:
      values = [r[key] for r in group if r.get(key) is not None]
      values = [v for v in values if math.isfinite(v)]
      column = "encode_seconds" if key == "seconds" else key
      row[column] = float(np.mean(values)) if values else None
    rows.setdefault(method, []).append(row)
  return rows


def write_csvs(results_dir, rows):
  """Writes METHOD.csv per method: its setting column, then `_CSV_COLUMNS`."""
  os.makedirs(results_dir, exist_ok=True)
  paths = {}
  for method, method_rows in rows.items():
    path = os.path.join(results_dir, f"{method}.csv")
    columns = (bayesian_ac_image.PARAMETER_NAMES[method],) + _CSV_COLUMNS
    with open(path, "w", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(columns)
      for row in method_rows:
        writer.writerow(["" if row.get(k) is None else repr(float(row[k]))
                         if k != "num_images" else row[k] for k in columns])
    paths[method] = path
  return paths


def format_rows(rows):
  """Human-readable table lines of `aggregate` rows."""
  lines = []
  for method, method_rows in rows.items():
    for row in method_rows:
      setting = row[bayesian_ac_image.PARAMETER_NAMES[method]]
      est = "" if row.get("est_bpp") is None else f"  est {row['est_bpp']:.4f}"
      parameter = bayesian_ac_image.PARAMETER_NAMES[method]
      lines.append(f"{method:12s} {parameter} {setting:<8g} "
                   f"bpp {row['bpp']:.4f}{est}  psnr {row['psnr']:.2f} dB  "
                   f"ms-ssim {row['ms_ssim']:.4f}")
  return lines


def write_rate_distortion(results_dir, sweep, extra=None):
  """Writes the CSVs and `channels.json` (plus `extra` keys) of a sweep."""
  paths = write_csvs(results_dir, sweep["rows"])
  if sweep.get("channels") is not None:
    report = dict(sweep["channels"], **(extra or {}))
    path = os.path.join(results_dir, "channels.json")
    checkpoints.write_json_atomic(path, report)
    paths["channels"] = path
  return paths
