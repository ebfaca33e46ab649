"""The scale table of y's indexed entropy model (as in tfc's bmshj2018).

The hyper-synthesis predicts a continuous scale index per latent; the range coder
codes with the Gaussian of the integer index below it (`coding_indexes`), and
relaxed rates use the continuous index clipped to the table (`clipped_scale`).
"""

import numpy as np
import tensorflow as tf

SCALES_MIN = 0.11
SCALES_MAX = 256.
SCALES_LEVELS = 64
_LOG_SCALES_MIN = float(np.log(SCALES_MIN))
_LOG_SCALES_STEP = float(
    (np.log(SCALES_MAX) - np.log(SCALES_MIN)) / (SCALES_LEVELS - 1))


def scale_fn(index):
  """Maps a (continuous) scale index to the Gaussian scale it stands for."""
  return tf.math.exp(_LOG_SCALES_MIN + _LOG_SCALES_STEP * index)


def clipped_scale(indexes):
  """The scale of continuous `indexes`, clipped to the table's range."""
  return scale_fn(tf.clip_by_value(indexes, 0., SCALES_LEVELS - 1.))


def coding_indexes(indexes):
  """The integer scale indexes the range coder actually uses for float `indexes`.

  tfc's indexed entropy model clips indexes to [0, SCALES_LEVELS - 1] and truncates
  them to int32 when coding; rates measured with these indexes equal coded rates.
  """
  return tf.floor(tf.clip_by_value(indexes, 0., SCALES_LEVELS - 1.))
