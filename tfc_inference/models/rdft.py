"""RDFT kernel parameters of `tfc.SignalConv2D`, built or evaluated faster.

tfc stores each convolution kernel `[kh, kw, in, out]` as the real and imaginary
parts of its 2-D RDFT (`tfc.RDFTParameter`, variables `[in, out, kh, kw//2+1]`)
and runs an `irfft2d` to get the kernel on every call. The two classes here keep
exactly those variables (names, shapes, checkpoint keys), so weights and training
checkpoints move between them and tfc's class freely:

  * `ZeroRDFTParameter` is created without computing a kernel, for weights about
    to be loaded (a cold start);
  * `MatmulRDFTParameter` evaluates the inverse RDFT as one matrix product. The
    inverse RDFT of a tiny kernel is a linear map from 2 kh (kw//2+1) numbers to
    kh kw; TensorFlow's CPU FFT runs it as in x out separate 5x5 transforms, which
    took 47% of an mbt2018 training step (N = 64, M = 192, 256x256 x 2, one core:
    276 of 586 ms, forward and gradient). `matmul_kernels` uses it for training.
"""

import contextlib
import functools

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc


class ZeroRDFTParameter(tfc.RDFTParameter):
  """`tfc.RDFTParameter` of a zero kernel, created without computing one.

  The RDFT parameter a `SignalConv2D` builds by default starts from a random
  kernel and takes its 2-D RDFT: over a model's fourteen layers about a tenth of
  a second of every cold start, spent on values that loading a checkpoint
  overwrites at once. Same variables, names and shapes (tfc's layout: the RDFT
  over the two spatial axes, last), so weights and checkpoints load as usual.
  """

  def __init__(self, kernel_shape, dtype=tf.float32, name="kernel"):
    tf.Module.__init__(self, name=name)  # pylint: disable=non-parent-init-called
    kernel_shape = tf.TensorShape(kernel_shape)
    self._shape = kernel_shape
    self._dtype = tf.as_dtype(dtype)
    kh, kw, channels_in, channels_out = kernel_shape.as_list()
    rdft_shape = [channels_in, channels_out, kh, kw // 2 + 1]
    self.real = tf.Variable(tf.zeros(rdft_shape, dtype), name=f"{name}_real")
    self.imag = tf.Variable(tf.zeros(rdft_shape, dtype), name=f"{name}_imag")

  @classmethod
  def for_layer(cls, layer, input_shape):
    """The parameter `layer` would build for inputs of `input_shape`."""
    if layer.kernel_parameter != "rdft" or layer.channel_separable or len(
        layer.kernel_support) != 2:
      raise ValueError(f"{layer.name}: only 2-D RDFT kernels can be built empty")
    channels_in = tf.TensorShape(input_shape)[-1]
    return cls(tuple(layer.kernel_support) + (channels_in, layer.filters),
               layer.variable_dtype)


@functools.lru_cache(maxsize=None)
def inverse_rdft_matrix(kernel_support):
  """The inverse 2-D RDFT of `tfc.RDFTParameter` as a matrix, float32
  `[2 kh (kw//2+1), kh kw]`: rows for the real parts, then the imaginary parts
  (row-major over `[kh, kw//2+1]`), columns row-major over `[kh, kw]`. Includes
  tfc's normalization (the RDFT is scaled by 1/sqrt(kh kw)). Computed with tfc's
  own `irfft2d` on unit vectors, so it is the map tfc applies (imaginary parts
  that the inverse transform ignores get zero rows). Cached per support (a
  tuple): the caller must not modify the array."""
  kh, kw = kernel_support
  size = kh * (kw // 2 + 1)
  unit = np.eye(size, dtype=np.float32).reshape(size, kh, kw // 2 + 1)
  norm = np.float32((kh * kw) ** .5)
  rows = []
  for real, imag in ((unit, np.zeros_like(unit)), (np.zeros_like(unit), unit)):
    rdft = tf.complex(real, imag) * tf.complex(norm, np.float32(0))
    kernels = tf.signal.irfft2d(rdft, fft_length=[kh, kw])
    rows.append(tf.reshape(kernels, [size, kh * kw]).numpy())
  return np.concatenate(rows, axis=0)


class MatmulRDFTParameter(tfc.RDFTParameter):
  """A 2-D `tfc.RDFTParameter` (its very variables) whose kernel is one matrix
  product instead of an `irfft2d`: the same kernel to float32 rounding (about
  1e-7 relative), with its gradient a matrix product too.

  Args:
    parameter: the `tfc.RDFTParameter` (rank-4 kernel) to evaluate this way.
  """

  def __init__(self, parameter):  # pylint: disable=super-init-not-called
    if parameter.shape.rank != 4:
      raise ValueError("MatmulRDFTParameter supports 2-D kernels only, not "
                       f"shape {parameter.shape}")
    tf.Module.__init__(self, name=parameter.name)  # pylint: disable=non-parent-init-called
    self._shape = parameter.shape
    self._dtype = parameter.dtype
    self.real = parameter.real
    self.imag = parameter.imag
    self._matrix = inverse_rdft_matrix(tuple(self._shape[:2]))

  def __call__(self, compute_dtype=None):
    kh, kw, channels_in, channels_out = self._shape.as_list()
    size = kh * (kw // 2 + 1)
    pairs = channels_in * channels_out
    # [in out, 2 size] @ [2 size, kh kw] -> [kh kw, in out] (one transposed product).
    rdft = tf.concat([tf.reshape(self.real, [pairs, size]),
                      tf.reshape(self.imag, [pairs, size])], axis=1)
    matrix = tf.constant(self._matrix, dtype=rdft.dtype)
    kernel = tf.matmul(matrix, rdft, transpose_a=True, transpose_b=True)
    kernel = tf.reshape(kernel, [kh, kw, channels_in, channels_out])
    return kernel if compute_dtype is None else tf.cast(kernel, compute_dtype)


def _rdft_layers(model):
  return [layer for layer in model.submodules
          if isinstance(layer, tfc.SignalConv2D) and isinstance(
              layer.kernel_parameter, tfc.RDFTParameter)
          and layer.kernel_parameter.shape.rank == 4]


@contextlib.contextmanager
def matmul_kernels(model):
  """Within the context, every built `SignalConv2D` of `model` with a 2-D RDFT
  kernel computes it with `MatmulRDFTParameter` (same variables; checkpoints
  written inside name the same keys). The original parameters come back on exit,
  so coding outside the context keeps tfc's `irfft2d` bit for bit."""
  swapped = []
  try:
    for layer in _rdft_layers(model):
      original = layer.kernel_parameter
      if not isinstance(original, MatmulRDFTParameter):
        # The public setter refuses a built layer; the tracked attribute is
        # `_kernel_parameter` (checkpoint keys end in `_kernel_parameter/real`).
        layer._kernel_parameter = MatmulRDFTParameter(original)  # pylint: disable=protected-access
        swapped.append((layer, original))
    yield model
  finally:
    for layer, original in swapped:
      layer._kernel_parameter = original  # pylint: disable=protected-access
