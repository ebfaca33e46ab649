"""Transforms as raw TF ops on frozen weights, in float32 or bfloat16.

Iterative inference evaluates and differentiates the synthesis and hyper-synthesis
thousands of times with fixed weights, and tiled coding runs the analysis and
synthesis once per tile. Through tfc's layers, every call rebuilds
each kernel from its RDFT parameterization and GDN's gamma and beta from their
reparameterizations, and the layers refuse bfloat16. `FrozenTransform` reads those
tensors once and runs the ops each `tfc.SignalConv2D` (with its GDN or ReLU
activation) runs, on copies of them in the compute dtype:

  * float32: the very ops tfc runs (explicit "same_zeros" padding), so the outputs
    equal the layers' bit for bit;
  * bfloat16: oneDNN has no fast bfloat16 kernel for explicit padding (20x slower
    than float32 on our CPUs), so the ops use "SAME" padding with the kernel grown
    by zeros to keep tfc's alignment: the same sums, rounded to bfloat16.

Use bfloat16 only for relaxed objectives: everything the decoder must reproduce
(the true loss, the final rounding, the reconstruction) runs in float32, so files
decode exactly whatever dtype the optimization ran in.
"""

import contextlib
import dataclasses
import functools
from typing import Optional
import warnings

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

DTYPES = ("float32", "bfloat16")
# CPU flags (Linux /proc/cpuinfo) of native bfloat16 arithmetic.
_BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_warned_slow = []


def check_dtype(dtype):
  """Raises ValueError unless `dtype` names one of `DTYPES`."""
  if dtype not in DTYPES:
    raise ValueError(f"compute_dtype must be one of {DTYPES}, not {dtype!r}")


@functools.lru_cache(maxsize=None)
def cpu_features():
  """(vendor id, set of flags) of this CPU from /proc/cpuinfo, for example
  ("AuthenticAMD", {"avx512_bf16", ...}); None where that cannot be read."""
  vendor, features = "", None
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id" and not vendor:
          vendor = value.strip()
        elif key.strip() == "flags" and features is None:
          features = set(value.split())
        if vendor and features is not None:
          break
  except OSError:
    return None
  return None if features is None else (vendor, features)


def native_bfloat16():
  """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16):
  True or False from /proc/cpuinfo, None where that cannot be read. Without it
  oneDNN emulates bfloat16 convolutions: on a 2-core AVX2 machine the synthesis
  forward pass plus gradient took 2.2 s in bfloat16 against 0.27 s in float32."""
  info = cpu_features()
  return None if info is None else bool(info[1] & set(_BFLOAT16_CPU_FLAGS))


def slow_bfloat16_reason():
  """Why bfloat16 transforms would run slower than float32 on this CPU, or None
  where they ran faster on CPUs of its kind (or the CPU is unknown).

  Measured (one core, 5x5 64->64 convolution / one SGA iteration on a Kodak
  image): AMX-BF16 (Intel) and AVX512-BF16 on AMD EPYC ran bfloat16 about 2x
  faster than float32; AVX512-BF16 on an Intel Xeon without AMX ran it slower
  (oneDNN's avx512_core_bf16 kernels: 107 against 141 GFLOP/s, SGA 0.40 against
  0.24 s/iteration); without either flag oneDNN emulates it (about 8x slower)."""
  if native_bfloat16() is False:
    return ("this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 "
            "flag): bfloat16 runs emulated, several times slower than float32")
  info = cpu_features()
  if (info is not None and info[0] == "GenuineIntel" and
      "amx_bf16" not in info[1]):
    return ("this Intel CPU has avx512_bf16 but no amx_bf16: bfloat16 "
            "convolutions measured about 1.3-1.7x slower than float32 on such "
            "CPUs (compare with benchmarks/speed.py --compute_dtype)")
  return None


def warn_if_slow_bfloat16(compute_dtype, warn=None):
  """Warns once per process when `compute_dtype` is bfloat16 and
  `slow_bfloat16_reason()` says this CPU runs it slower than float32, through
  `warn(message)` or `warnings.warn`. Returns the message, or None."""
  if compute_dtype != "bfloat16":
    return None
  message = slow_bfloat16_reason()
  if message is None:
    return None
  if not _warned_slow:
    _warned_slow.append(True)
    if warn is None:
      warnings.warn(message, RuntimeWarning, stacklevel=3)
    else:
      warn(message)
  return message


def inference_transforms(model, compute_dtype="float32"):
  """The snapshots iterative inference needs from a hyperprior model:
  (synthesis, hyper-synthesis) in float32, equal to the layers bit for bit (for
  rates, true losses and anything a decoder repeats), and the relaxed
  objective's synthesis in `compute_dtype` (the float32 one when that is float32)."""
  warn_if_slow_bfloat16(compute_dtype)
  exact = (FrozenTransform(model.synthesis_transform),
           FrozenTransform(model.hyper_synthesis_transform))
  relaxed = (exact[0] if compute_dtype == "float32" else
             FrozenTransform(model.synthesis_transform, compute_dtype))
  return exact, relaxed


def snapshot(transform):
  """`transform` as a float32 `FrozenTransform` (equal outputs bit for bit), for
  code that needs no gradient w.r.t. the weights: coding, decoding, tiles.

  tfc's layers rebuild every kernel from its parameterization on each call (about
  10 ms a layer eagerly: a cold `compress` called the tiny hyper-synthesis eight
  times). The snapshot is kept on the transform and reused while every weight
  still holds the value it was taken from (compared on each call, a fraction of
  a millisecond), so training or loading other weights never leaves it stale.
  Returns `transform` itself inside a `tf.function` (a snapshot reads the layers'
  constants as numbers) and for transforms `FrozenTransform` cannot run.
  """
  if isinstance(transform, FrozenTransform) or not tf.executing_eagerly():
    return transform
  values = [v.numpy() for v in transform.weights]
  cached = getattr(transform, "_frozen_snapshot", None)
  if cached is not None and len(cached[0]) == len(values) and all(
      np.array_equal(a, b) for a, b in zip(cached[0], values)):
    return cached[1]
  try:
    frozen = FrozenTransform(transform)
  except (ValueError, AttributeError):
    return transform
  # Keras tracks attributes set on layers; a tuple of arrays and a plain
  # object is left alone.
  object.__setattr__(transform, "_frozen_snapshot", (values, frozen))
  return frozen


def _require(condition, layer, what):
  if not condition:
    raise ValueError(f"FrozenTransform cannot run layer {layer.name!r}: {what}")


def _frozen_activation(layer, dtype):
  """The layer's activation as a function of dtype tensors."""
  activation = layer.activation
  if activation is None or activation is tf.keras.activations.linear:
    return None
  if activation is tf.nn.relu or activation is tf.keras.activations.relu:
    return tf.nn.relu
  _require(isinstance(activation, tfc.GDN), layer,
           "the activation must be linear, ReLU or a GDN")
  gdn = activation
  _require(not gdn.rectify, layer, "rectified GDN is not supported")
  # Static values: inside a tf.function (training) alpha is a graph constant.
  _require(not callable(gdn.alpha_parameter) and
           tf.get_static_value(gdn.alpha) == 1., layer,
           "GDN alpha must be fixed at 1")
  _require(not callable(gdn.epsilon_parameter) and
           tf.get_static_value(gdn.epsilon) == 1., layer,
           "GDN epsilon must be fixed at 1")
  gamma = tf.convert_to_tensor(gdn.gamma)
  gamma = tf.cast(tf.reshape(gamma, [1, 1] + gamma.shape.as_list()), dtype)
  beta = tf.cast(tf.convert_to_tensor(gdn.beta), dtype)

  def apply(x):  # GDN with alpha = epsilon = 1: x / or * (beta + gamma |x|)
    norm = tf.nn.bias_add(tf.nn.convolution(tf.abs(x), gamma, padding="VALID"),
                          beta)
    return x * norm if gdn.inverse else x / norm
  return apply


def _transposed_kernel_for_same(kernel, strides):
  """A `tfc.SignalConv2D` upsampling kernel [kh, kw, in, out] in the layout and
  alignment `tf.nn.conv2d_transpose(..., padding="SAME")` needs.

  "SAME" pads (K - s) // 2 before a kernel of size K at stride s: growing the
  kernel by s - 1 zeros at its end (K = k - 1 + s) aligns it as tfc's explicit
  padding (k // 2 before). conv2d_transpose takes the kernel as [kh, kw, out, in].
  """
  kernel = tf.pad(kernel, [[0, s - 1] for s in strides] + [[0, 0]] * 2)
  return tf.transpose(kernel, [0, 1, 3, 2])


class _FrozenConv:
  """One `tfc.SignalConv2D`: an upsampling convolution, a stride-1
  convolution/correlation or a downsampling correlation, "same_zeros" padding,
  channels last."""

  def __init__(self, layer, dtype):
    _require(not layer.channel_separable, layer, "separable kernels")
    _require(layer.padding == "same_zeros" and layer.use_explicit, layer,
             "padding must be explicit same_zeros")
    _require(layer.data_format == "channels_last", layer, "channels_last only")
    _require(all(k % 2 == 1 for k in layer.kernel_support), layer, "odd kernels")
    self.dtype = dtype
    self.pad_input = None  # explicit padding done by tf.pad before the op
    self.filters = layer.filters
    self.strides = tuple(layer.strides_up)
    self.upsampling = any(s > 1 for s in self.strides)
    self.strides_down = tuple(layer.strides_down)
    self.downsampling = any(s > 1 for s in self.strides_down)
    if self.downsampling:
      _require(not self.upsampling, layer, "up- and downsampling at once")
    kernel = tf.convert_to_tensor(layer.kernel)
    support = layer.kernel_support
    self.layer = layer  # for its geometry and weights (`ResidualConv`)
    if self.upsampling:
      _require(not layer.corr and all(s > 1 for s in self.strides), layer,
               "upsampling must be a convolution in both dimensions")
      _require(layer.extra_pad_end, layer, "extra_pad_end must be set")
      if dtype == tf.float32:  # tfc's explicit padding: k // 2 before, rest after
        self.padding = ([[0, 0]] + [[k // 2, (k - 1) // 2] for k in support] +
                        [[0, 0]])
        kernel = tf.transpose(kernel, [0, 1, 3, 2])  # conv2d_transpose's layout
      else:
        kernel = _transposed_kernel_for_same(kernel, self.strides)
        self.padding = "SAME"
    else:
      if not layer.corr:  # tfc runs such a convolution as a flipped correlation
        kernel = kernel[::-1, ::-1]
      # For odd kernels, same_zeros pads k // 2 on both sides (at stride 1 as
      # "SAME" does); float32 keeps tfc's explicit form to match it bit for bit.
      same_zeros = [[0, 0]] + [[k // 2, k // 2] for k in support] + [[0, 0]]
      self.padding = same_zeros if dtype == tf.float32 else "SAME"
      if dtype != tf.float32 and self.downsampling:
        # A strided "SAME" would align differently from tfc; padding first and
        # correlating "VALID" is tfc's sum (and in bfloat16 faster than a kernel
        # grown to align "SAME": 26 against 36 ms for a 128x128x64 layer).
        self.pad_input, self.padding = same_zeros, "VALID"
    self.kernel = tf.cast(kernel, dtype)
    self.bias = (tf.cast(tf.convert_to_tensor(layer.bias), dtype)
                 if layer.use_bias else None)
    self.activation = _frozen_activation(layer, dtype)

  def __call__(self, inputs):
    if self.upsampling:
      shape = tf.shape(inputs)
      output_shape = tf.stack([shape[0], shape[1] * self.strides[0],
                               shape[2] * self.strides[1], self.filters])
      outputs = tf.nn.conv2d_transpose(inputs, self.kernel, output_shape,
                                       strides=self.strides, padding=self.padding)
    else:
      if self.pad_input is not None:
        inputs = tf.pad(inputs, self.pad_input)
      outputs = tf.nn.conv2d(inputs, self.kernel, strides=self.strides_down,
                             padding=self.padding)
    if self.bias is not None:
      outputs = tf.nn.bias_add(outputs, self.bias)
    if self.activation is not None:
      outputs = self.activation(outputs)
    return outputs


def _hi_lo(values, dtype):
  """`values` (float32) as two `dtype` tensors whose sum is `values` to about
  twice `dtype`'s precision."""
  high = tf.cast(values, dtype)
  return high, tf.cast(values - tf.cast(high, tf.float32), dtype)


def _phase_taps(support, stride):
  """Which tap of a `tfc.SignalConv2D` upsampling kernel each output phase reads
  from each input offset, as one stride-1 correlation: (window, index), where
  `index[u, v, p]` (int [m, m, stride^2]) is the flattened tap (kh * kw: none)
  that output phase p = r_h * stride + r_w reads from input pixel (i + u - m // 2,
  j + v - m // 2) for output pixel (stride i + r_h, stride j + r_w).

  Output pixel stride * i + r reads tap stride * (i - j) + r + k // 2 of input
  pixel j (tfc's alignment, see `_FrozenConv`)."""
  reach = [max(abs(e) for e in range(-k, k + 1) for r in range(stride)
               if 0 <= -stride * e + r + k // 2 < k) for k in support]
  window = 2 * max(reach) + 1
  half = window // 2
  index = np.full([window, window, stride * stride], support[0] * support[1])
  for u in range(window):
    for v in range(window):
      for rh in range(stride):
        for rw in range(stride):
          th = -stride * (u - half) + rh + support[0] // 2
          tw = -stride * (v - half) + rw + support[1] // 2
          if 0 <= th < support[0] and 0 <= tw < support[1]:
            index[u, v, rh * stride + rw] = th * support[1] + tw
  return window, index


class ResidualConv:
  """A last upsampling `tfc.SignalConv2D` to a few (RGB) channels, without
  activation, computing `layer(inputs) - reference` in a low-precision `dtype`.

  It runs as one stride-1 correlation whose outputs are the stride^2 output
  phases (sub-pixel form, then depth-to-space): for few output channels oneDNN
  is far faster at that than at the transposed convolution (kodim01, bfloat16,
  forward and gradient: 17 against 10 ms). The reference enters it as extra input
  channels: `reference - bias`, split into high and low `dtype` parts, laid out
  per output phase (space-to-depth by the stride) and read by the centre tap
  with weight -1, so the convolution's float32 accumulator holds the error
  before its output is rounded to `dtype`. Tested against the float32 layer in
  tests/test_frozen.py. The kernel is gathered from the layer's with TF ops, so
  it is differentiable with respect to the layer's weights (training).
  """

  def __init__(self, layer, dtype):
    strides = tuple(layer.strides_up)
    _require(layer.filters <= 4 and strides[0] == strides[1] and strides[0] > 1 and
             not layer.corr and layer.extra_pad_end and layer.use_bias, layer,
             "a residual needs an upsampling convolution to few channels")
    self.dtype = tf.as_dtype(dtype)
    self.stride = stride = strides[0]
    channels = layer.filters
    kernel = tf.convert_to_tensor(layer.kernel)  # [kh, kw, in, out]
    support = tuple(layer.kernel_support)
    window, index = _phase_taps(support, stride)
    taps = tf.reshape(kernel, [support[0] * support[1], -1, channels])
    taps = tf.concat([taps, tf.zeros_like(taps[:1])], axis=0)  # the "none" tap
    # [m, m, phases, in, out] -> [m, m, in, phases * out]: output channel
    # p * C + c is channel c of phase p, the order depth_to_space reads.
    phased = tf.transpose(tf.gather(taps, index), [0, 1, 3, 2, 4])
    phased = tf.reshape(phased, [window, window, -1, stride * stride * channels])
    # Extra input channel p * C + c of each reference part adds -1 x its value
    # to output channel p * C + c, at the centre tap.
    phases = stride * stride * channels
    unit = np.zeros([window, window, phases, phases], np.float32)
    unit[window // 2, window // 2] = -np.eye(phases, dtype=np.float32)
    self.kernel = tf.cast(tf.concat([phased, unit, unit], axis=2), self.dtype)
    self.bias = tf.convert_to_tensor(layer.bias)

  def reference_parts(self, reference):
    """The extra input channels of `reference` (float32 [B, s h, s w, C]): its
    high and low `dtype` parts [B, h, w, s s C], laid out per output phase."""
    target = tf.nn.space_to_depth(tf.stop_gradient(reference) - self.bias,
                                  self.stride)
    return _hi_lo(target, self.dtype)

  def __call__(self, inputs, reference, parts=None):
    """inputs: [B, h, w, N] (any float dtype); reference: float32 [B, s h, s w,
    C]; `parts`: its `reference_parts`, if computed already. Returns float32 [B,
    s h, s w, C]: the layer's output minus `reference`."""
    high, low = self.reference_parts(reference) if parts is None else parts
    stacked = tf.concat([tf.cast(inputs, self.dtype), high, low], axis=-1)
    phases = tf.nn.conv2d(stacked, self.kernel, 1, padding="SAME")
    return tf.nn.depth_to_space(tf.cast(phases, tf.float32), self.stride)


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedReference:
  """An image against which `FrozenTransform.residual` is taken many times (the
  iterations of an inference run), with what its `ResidualConv` reads of the
  image computed once: per iteration that saved about a quarter of the RGB
  output convolution's time (kodim01, bfloat16, forward and gradient: 27 against
  20 ms, measured with the transposed form `ResidualConv` had then). Make one with `prepare_reference`; `residual`, `reconstruction_error`
  and `hyperprior.synthesis_mse` take it where they take the image.

  Attributes:
    image: float32 [B, H, W, C], the reference itself.
    parts: the `ResidualConv.reference_parts` of `image` (scaled as the
      transform's residual path needs), or None where there is no such path.
  """
  image: tf.Tensor
  parts: Optional[tuple] = None

  @property
  def shape(self):
    return self.image.shape


def image_of(reference):
  """The image of a `PreparedReference`, or `reference` itself."""
  return reference.image if isinstance(reference, PreparedReference) else reference


def prepare_reference(synthesis, reference):
  """`reference` (float32 [B, H, W, C]) as a `PreparedReference` for the
  residuals of `synthesis` (with parts where it is a `FrozenTransform` with a
  bfloat16 residual path)."""
  reference = tf.convert_to_tensor(image_of(reference), tf.float32)
  if not isinstance(synthesis, FrozenTransform):
    return PreparedReference(reference)
  return synthesis.prepare_reference(reference)


class FrozenTransform:
  """A transform run as raw ops on a weight snapshot.

  Args:
    transform: a built `transforms.LayerStack` of `SignalConv2D`s and scaling
      Lambdas: a synthesis, an analysis or a hyper-transform.
    dtype: compute dtype, "float32" or "bfloat16". With bfloat16, a last
      convolution to at most 3 channels (the synthesis' RGB output, about 11% of
      its work) still runs in float32: in bfloat16 its 0-255 outputs would be
      rounded to steps of 1; so does a first one from at most 3 channels (the
      analysis' RGB input, whose 256 levels bfloat16 would round to 128).

  Call with a float32 tensor `[B, h, w, C]`; returns float32, the shape the
  transform returns. The snapshot is taken at construction: make a new one when
  the weights change.
  """

  def __init__(self, transform, dtype="float32"):
    check_dtype(tf.as_dtype(dtype).name if isinstance(dtype, tf.DType) else dtype)
    self.dtype = tf.as_dtype(dtype)
    convs = [l for l in transform.layers if isinstance(l, tfc.SignalConv2D)]
    if not convs or not all(l.built for l in convs):
      raise ValueError("FrozenTransform needs a built transform")
    # The original layers, for their geometry (e.g. `tiling.halo`).
    self.layers = list(transform.layers)
    self._steps = []
    for layer in transform.layers:
      if isinstance(layer, tfc.SignalConv2D):
        rgb_output = layer is convs[-1] and layer.filters <= 3
        rgb_input = layer is convs[0] and layer.kernel_parameter.shape[-2] <= 3
        self._steps.append(_FrozenConv(
            layer, tf.float32 if rgb_output or rgb_input else self.dtype))
      elif isinstance(layer, tf.keras.layers.Lambda):
        self._steps.append(layer.function)  # Keras' call would cast to float32
      else:
        raise ValueError(f"FrozenTransform cannot run layer {layer.name!r}")
    # (ResidualConv or None, scale) for `residual`: kept where it is built
    # eagerly; one made inside a tf.function (training's `computed_in`) would
    # hold that graph's tensors, so there `residual` builds it on each call.
    self._residual = self._residual_path() if tf.executing_eagerly() else None

  def _residual_path(self):
    """(`ResidualConv` of the last convolution, the constant factor the steps
    after it scale by) where `residual` can run it in the compute dtype, else
    (None, None). Only a linear scaling (the synthesis' x 255) may follow it."""
    convs = [i for i, step in enumerate(self._steps) if isinstance(step, _FrozenConv)]
    last = self._steps[convs[-1]]
    if (self.dtype == tf.float32 or last.dtype != tf.float32 or
        not last.upsampling or last.activation is not None):
      return None, None
    scale = 1.
    for step in self._steps[convs[-1] + 1:]:
      # Probed with NumPy numbers, which a Lambda's x * 255 maps to numbers in
      # graph mode too; anything else keeps the float32 last convolution.
      zero, one, two = (step(np.float32(v)) for v in (0., 1., 2.))
      if not all(isinstance(v, (float, np.floating)) for v in (zero, one, two)):
        return None, None
      if two != 2. * one or zero != 0.:
        return None, None
      scale *= float(one)
    try:
      return ResidualConv(last.layer, self.dtype), scale
    except ValueError:
      return None, None

  @property
  def convolutions(self):
    """The frozen convolutions in order, one per `SignalConv2D`: each has the
    `kernel` (in its compute dtype and the layout its op takes), `strides`,
    `padding`, `filters` and `dtype` it runs with."""
    return [step for step in self._steps if isinstance(step, _FrozenConv)]

  def __call__(self, inputs):
    outputs = tf.convert_to_tensor(inputs, tf.float32)
    for step in self._steps:
      outputs = step(tf.cast(outputs, getattr(step, "dtype", outputs.dtype)))
    return tf.cast(outputs, tf.float32)

  def prepare_reference(self, reference):
    """`reference` [B, H, W, C] as a `PreparedReference` for `residual`."""
    reference = tf.convert_to_tensor(reference, tf.float32)
    residual_conv, scale = self._residual or self._residual_path()
    if residual_conv is None:
      return PreparedReference(reference)
    return PreparedReference(reference,
                             residual_conv.reference_parts(reference / scale))

  def residual(self, inputs, reference):
    """`self(inputs) - reference` in float32 (differentiable w.r.t. `inputs`):
    the reconstruction error of a synthesis against the image `reference` [B, H,
    W, C] (or a `PreparedReference` of it), which must be the transform's output
    size.

    In bfloat16 the last convolution to RGB, which `__call__` runs in float32
    (its 0-255 outputs would round to steps of 1), runs in bfloat16 too
    (`ResidualConv`): it computes the error itself, whose small values bfloat16
    keeps to 3 significant digits. The error then costs a fraction of the float32
    convolution (forward pass and gradient on a Kodak image, 2-core AMD EPYC:
    about 23 ms in float32, 17 ms for `ResidualConv`).
    """
    parts = getattr(reference, "parts", None)
    reference = tf.convert_to_tensor(image_of(reference), tf.float32)
    residual_conv, scale = self._residual or self._residual_path()
    if residual_conv is None:
      return self(inputs) - reference
    last = self.convolutions[-1]
    outputs = tf.convert_to_tensor(inputs, tf.float32)
    for step in self._steps[:self._steps.index(last)]:
      outputs = step(tf.cast(outputs, getattr(step, "dtype", outputs.dtype)))
    return scale * residual_conv(outputs, reference / scale, parts)


def reconstruction_error(synthesis, y, x):
  """`synthesis(y) - x` in float32 [B, H, W, C], differentiable w.r.t. `y`;
  `x` must be the synthesis' output size (or a `PreparedReference` of it). A
  `FrozenTransform` computes it with its `residual` (in bfloat16, the error
  itself comes out of its last convolution); any other transform as written."""
  if isinstance(synthesis, FrozenTransform):
    return synthesis.residual(y, x)
  return synthesis(y) - image_of(x)


@contextlib.contextmanager
def computed_in(transforms, dtype):
  """Within the context, every call of each transform in `transforms` (built
  `transforms.LayerStack`s) runs as a `FrozenTransform` in `dtype`, taken from
  the weights at that call: differentiable with respect to them. Training can so
  run the large transforms in bfloat16 while the weights, the entropy models and
  the rates stay float32."""
  check_dtype(dtype)
  previous = [t.raw_ops_dtype for t in transforms]
  try:
    for transform in transforms:
      # Not a tracked Keras attribute: a plain instance value.
      object.__setattr__(transform, "raw_ops_dtype", dtype)
    yield
  finally:
    for transform, dtype_before in zip(transforms, previous):
      object.__setattr__(transform, "raw_ops_dtype", dtype_before)
