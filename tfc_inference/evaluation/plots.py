"""Rate-distortion figures with one style per method across every figure.

Curves are keyed by a label: a method name (`sga`, `mbt2018`, `jpeg`, ...), a
published curve's file stem (`mbt2018-psnr`, `balle-2017-iclr`, ...), or any
other text. `style` maps each known label to a readable name, a colour that is
the same in every figure, and a dashed line for published curves. Legends sit
outside the axes so they never cover a curve. matplotlib is imported lazily and
draws with the Agg backend (no display needed).
"""

import numpy as np

from tfc_inference.evaluation import rd_curves

# Label -> (legend text, colour). Ours are solid, published ones dashed.
_OURS = {
    "mbt2018": ("Base hyperprior [M3]", "#1f77b4"),
    "bmshj2018": ("Scale hyperprior [M6]", "#ff7f0e"),
    "mbt2018_bb": ("Bits-back hyperprior, amortized (net rate)", "#8c564b"),
    "sga": ("SGA [M1]", "#d62728"),
    "bb_sga": ("SGA + bits-back [M2]", "#9467bd"),
    "map": ("MAP [A1]", "#bcbd22"),
    "ste": ("STE [A2]", "#17becf"),
    "unoise": ("Uniform noise [A3]", "#7f7f7f"),
    "danneal": ("Deterministic annealing [A4]", "#e377c2"),
    "bb_no_sga": ("BB without SGA [A5]", "#aec7e8"),
    "bb_plain": ("BB without iterative inference [A6]", "#c49c94"),
    "bayesian_ac": ("Bayesian AC (one VAE)", "#2ca02c"),
    "bayesian_ac_centroids": ("Bayesian AC, centroid decoding (ours)", "#98df8a"),
    "uniform": ("Uniform quantization (same VAE)", "#98df8a"),
    "kmeans": ("k-means quantization (same VAE)", "#ff9896"),
    "jpeg": ("JPEG 4:2:0 (Pillow)", "#000000"),
    "irec": ("iREC, a posterior sample (one VAE per sigma2)", "#393b79"),
}
_PUBLISHED = {
    "mbt2018-psnr": ("Base hyperprior [M3], published", "mbt2018"),
    "sga-psnr": ("SGA [M1], published", "sga"),
    "bb_sga-psnr": ("SGA + bits-back [M2], published", "bb_sga"),
    "minnen-2018-neurips-no-context": ("Mean-scale hyperprior (tfc), published",
                                       "mbt2018"),
    "balle-2018-iclr": ("Scale hyperprior (tfc), published", "bmshj2018"),
    "balle-2017-iclr": ("bls2017, individually trained (tfc), published",
                        "bayesian_ac"),
    "jpeg420": ("JPEG 4:2:0 (tfc), published", "jpeg"),
}
_FALLBACK_COLOURS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")


def style(label):
  """(legend text, colour or None, line style) of a curve label."""
  key = label.split("@")[0]
  if key.startswith("published: "):
    key = key[len("published: "):]
  if key in _PUBLISHED:
    text, method = _PUBLISHED[key]
    return text, _OURS[method][1], "--"
  if key in _OURS:
    text, colour = _OURS[key]
    variant = label.split("@")[1] if "@" in label else None
    return (f"{text} ({variant})" if variant else text), colour, "-"
  return label, None, "-"


def _new_figure(width=8.):
  """A matplotlib Figure drawn by the Agg canvas; leaves pyplot untouched."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  figure = Figure(figsize=(width, 4.5))
  FigureCanvasAgg(figure)
  return figure, figure.add_subplot(1, 1, 1)


def _draw(axes, label, x, y, marker="o"):
  text, colour, line = style(label)
  fallback = _FALLBACK_COLOURS[len(axes.lines) % len(_FALLBACK_COLOURS)]
  axes.plot(x, y, marker=marker, markersize=3, linestyle=line,
            color=colour or fallback, label=text)


def _save(figure, axes, path, title):
  axes.grid(True, alpha=0.3)
  if title:
    axes.set_title(title, fontsize="medium")
  # Outside the axes: a legend never covers a curve.
  axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.), fontsize="small",
              borderaxespad=0.)
  figure.tight_layout()
  figure.savefig(path, dpi=120, format="png")


def plot_rd(curves, path, ylabel="PSNR (dB)", xlabel="rate (bpp)", title=None,
            max_bpp=None):
  """Plots rate-distortion curves and writes a PNG to `path`.

  Args:
    curves: dict label -> (bpp, quality) arrays; each is drawn sorted by bpp.
    path: output PNG file name.
    ylabel: y-axis label naming the quality and its unit, e.g. "PSNR (dB)".
    xlabel: x-axis label; rates are in bits per pixel.
    title: plot title; state the protocol (images, iterations, checkpoints).
    max_bpp: right end of the rate axis (points beyond are cut off), so that a
      far-right point (e.g. JPEG at 3.4 bpp) does not squash the learned codecs'
      region; the quality axis fits the points shown. None: all points.
  """
  figure, axes = _new_figure()
  shown = []
  for label, (bpp, quality) in curves.items():
    bpp, quality = np.asarray(bpp, float), np.asarray(quality, float)
    order = np.argsort(bpp)
    _draw(axes, label, bpp[order], quality[order])
    keep = bpp <= max_bpp if max_bpp else np.ones_like(bpp, bool)
    shown.extend(quality[keep & np.isfinite(quality)])
  if max_bpp:
    axes.set_xlim(0., max_bpp)
    if shown:
      low, high = min(shown), max(shown)
      margin = 0.05 * max(high - low, 1e-6)
      axes.set_ylim(low - margin, high + margin)
  axes.set_xlabel(xlabel)
  axes.set_ylabel(ylabel)
  _save(figure, axes, path, title)


def plot_savings(reference, curves, path, reference_label="reference",
                 num=50, title=None):
  """Plots rate savings (percent) against PSNR (dB) relative to a reference.

  The y value is -`rd_curves.bd_rate_vs_quality(reference, curve)`: positive
  where a curve needs fewer bits than the reference at the same PSNR (as in
  Figure 4, right, of Yang et al. 2020). Writes a PNG to `path`.

  Args:
    reference: (bpp, psnr) arrays of the reference curve.
    curves: dict label -> (bpp, psnr) arrays.
    path: output PNG file name.
    reference_label: the reference's curve label.
    num: number of PSNR values evaluated per curve.
    title: plot title.
  """
  figure, axes = _new_figure()
  ref_bpp, ref_psnr = reference
  for label, (bpp, psnr) in curves.items():
    grid, change = rd_curves.bd_rate_vs_quality(ref_bpp, ref_psnr, bpp, psnr,
                                                num=num)
    _draw(axes, label, grid, -change, marker=None)
  axes.axhline(0., color="gray", linewidth=0.8)
  axes.set_xlabel("PSNR (dB)")
  axes.set_ylabel(f"rate savings over {style(reference_label)[0]} (%)")
  _save(figure, axes, path, title)
