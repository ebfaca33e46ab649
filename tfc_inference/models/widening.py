"""Starting a wider model from a trained narrower one.

A run may be fine-tuned into a model with more channels than the run it starts
from: a wider y (M, `num_latents`; the high-rate runs of the zoo) or wider hidden
layers and z (N, `num_filters`) of a hyperprior model, or a wider bls2017 VAE
(hidden layers and latents of N channels; a new latent's posterior starts from
fresh analysis filters, so its KL is paid from the first step). `widen` embeds the
narrow weights so that the wide model starts out computing what the narrow one
did, and training then puts the new channels to work.
"""

import itertools

import numpy as np

from tfc_inference.models import weights

# Weights whose second axis is the width of y (M) and of the hidden layers (N).
_Y_PROBE = "analysis_transform/layer_3/layer_3/kernel_real"
_HIDDEN_PROBE = "analysis_transform/layer_0/layer_0/kernel_real"


def _embedding(old_size, new_size, widths):
  """(destination, source) slice pairs embedding one axis of `old_size` into one
  of `new_size`, or None if no width change explains it.

  `widths` are (narrow, wide) channel counts. An axis may hold several groups of
  channels (the hyper-synthesis' [loc, scale index] per y channel, the bits-back
  posterior's [mean, log variance] per z channel): each group is embedded on its own.
  """
  if old_size == new_size:
    return [(slice(None), slice(None))]
  for narrow, wide in widths:
    groups = new_size // wide
    if narrow != wide and new_size % wide == 0 and old_size == groups * narrow:
      return [(slice(g * wide, g * wide + narrow), slice(g * narrow, (g + 1) * narrow))
              for g in range(groups)]
  return None


def widen(model, arrays):
  """Fits the weights of a run with fewer channels into `model`.

  `arrays` (key -> array, as `weight_arrays()` writes them) come from a run whose y
  has m <= M = `model.num_latents` channels and whose hidden layers and z have
  n <= N = `model.num_filters`. Weights whose shape already agrees are returned
  unchanged. The others are embedded so that the wide model computes what the
  narrow one did: old channels keep their weights; a new channel gets `model`'s
  current (initial) weights where it is computed (fresh analysis filters, a GDN
  that its initial zero cross terms keep apart from the old channels, a fresh
  factorized prior for a new z channel) and zero weight wherever a kernel reads it,
  so it starts out unused. Returns a new dict; `arrays` itself when nothing widens.

  Raises `weights.WeightMismatchError` if the run is wider than `model`.
  """
  hidden_probe = arrays.get(_HIDDEN_PROBE)
  # A VAE (no `num_latents`) has latents as wide as its hidden layers.
  num_latents = getattr(model, "num_latents", None)
  y_probe = arrays.get(_Y_PROBE) if num_latents else hidden_probe
  if y_probe is None or hidden_probe is None:
    return arrays
  widths = [(y_probe.shape[1], num_latents or model.num_filters),
            (hidden_probe.shape[1], model.num_filters)]
  y_flag = "num_latents" if num_latents else "num_filters"
  for (narrow, wide), what, flag in zip(widths, ("y", "hidden layer"),
                                        (y_flag, "num_filters")):
    if narrow > wide:
      raise weights.WeightMismatchError(
          f"cannot initialize a {what} of {wide} channels from a run with {narrow}: "
          f"--init_from a run whose --{flag} is at most {wide}")
  if all(narrow == wide for narrow, wide in widths):
    return arrays

  widened = dict(arrays)
  for key, var in model.named_weights().items():
    old = arrays.get(key)
    if old is None or old.shape == tuple(var.shape) or old.ndim != len(var.shape):
      continue
    per_axis = [_embedding(o, n, widths) for o, n in zip(old.shape, var.shape)]
    if any(pairs is None for pairs in per_axis):
      continue
    new = var.numpy().copy()
    if "kernel" in key and old.shape[0] != new.shape[0]:
      new[old.shape[0]:] = 0.  # new input channels are read with zero weight
    for pairs in itertools.product(*per_axis):
      new[tuple(dst for dst, _ in pairs)] = old[tuple(src for _, src in pairs)]
    widened[key] = np.asarray(new, old.dtype)
  return widened
