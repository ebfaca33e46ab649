"""Convolutional transforms of the hyperprior models (Ballé et al. 2018, Minnen et al. 2018).

All transforms are stacks (`LayerStack`, a leaner `tf.keras.Sequential`) of
`tfc.SignalConv2D` layers, as in tfc's `bmshj2018` model. Images enter the analysis transform as float32 in [0, 255]
with shape `[batch, height, width, 3]`; height and width must be multiples of 64 so
that the hyper-latents have integral size (see `image_io.pad_to_multiple`).
"""

import tensorflow as tf
import tensorflow_compression as tfc

from tfc_inference.models import frozen
from tfc_inference.models.rdft import ZeroRDFTParameter


_GRAPH_EQUALITY_CHECKED = []


def check_graph_tensor_equality():
  """Raises if `tensor == number` is not elementwise inside `tf.function`s.

  `tfc.GDN` stores its fixed alpha and epsilon as tensors and picks its formula
  with `if self.alpha == 1`. When TensorFlow is first imported inside
  `absl.app.run`, TF 2.14 falls back to object identity for `==` while tracing, so
  every traced GDN silently takes the `x ** alpha` branch without the `abs`: the
  traced transforms then disagree with the eager ones (we measured 19.5 dB instead
  of 25.9 dB on a Kodak crop). Import TensorFlow before `app.run` to avoid it.

  Runs once per process, when the first transform is built (not at import, so
  that a binary can still configure devices, e.g. `distribution.make_strategy`'s
  logical CPUs, after importing the library).
  """
  if _GRAPH_EQUALITY_CHECKED:
    return
  one = tf.constant(1.)
  traced = tf.function(lambda: tf.constant(isinstance(one == 1, bool)))()
  if bool(traced):
    raise RuntimeError(
        "TensorFlow compares tensors by identity inside tf.function in this "
        "process (it was first imported inside absl.app.run), which breaks "
        "tfc.GDN in traced code; import tensorflow before calling app.run")
  _GRAPH_EQUALITY_CHECKED.append(True)


def signal_conv(filters, kernel, name, *, down=1, up=1, bias=True,
                activation=None):
  """A square `tfc.SignalConv2D`: correlation when downsampling, convolution when
  upsampling, zero padding ("same" size before striding)."""
  check_graph_tensor_equality()
  return tfc.SignalConv2D(
      filters, (kernel, kernel), name=name, corr=up == 1, strides_down=down,
      strides_up=up, padding="same_zeros", use_bias=bias, activation=activation)


class LayerStack(tf.keras.Sequential):
  """A `tf.keras.Sequential` that runs its layers directly.

  On its first call and on every new input shape, a Sequential builds a functional
  graph network of Keras symbolic tensors, autograph-converting every layer's
  `call`: that was more than half of a cold `compress` (loading a checkpoint ran a
  tiny forward pass just to create the variables). A `LayerStack` call just runs
  its layers, and `build_stack` creates the variables without running anything.
  It stays a Sequential so that training checkpoints keep their object graph.
  """

  # A compute dtype set by `frozen.computed_in` (e.g. "bfloat16" while training):
  # calls then run as a `frozen.FrozenTransform` of the current weights.
  raw_ops_dtype = None

  def call(self, inputs, training=None, mask=None):  # pylint: disable=unused-argument
    if self.raw_ops_dtype is not None:
      return frozen.FrozenTransform(self, self.raw_ops_dtype)(inputs)
    outputs = inputs
    for layer in self.layers:
      outputs = layer(outputs)
    return outputs

  def build_stack(self, input_shape, initialize=True):
    """Creates every variable for inputs of `input_shape` (only the channel
    count must be known); returns the output shape. With `initialize=False`
    the convolution kernels are left at zero, for weights about to be loaded."""
    shape = tf.TensorShape(input_shape)
    for layer in self.layers:
      # The name scopes a first call would open, so variables get the same
      # names (`weights` keys on the part below the layer's name).
      with tf.name_scope(self.name), tf.name_scope(layer.name):
        if not layer.built:
          if not initialize and isinstance(layer, tfc.SignalConv2D):
            layer.kernel_parameter = ZeroRDFTParameter.for_layer(layer, shape)
          layer.build(shape)
        shape = layer.compute_output_shape(shape)
        activation = getattr(layer, "activation", None)
        if isinstance(activation, tf.keras.layers.Layer) and not activation.built:
          with tf.name_scope(activation.name):  # a GDN, built by the first call
            activation.build(shape)
    self.built = True
    return shape


class AnalysisTransform(LayerStack):
  """x [B, H, W, 3] in [0, 255] -> y [B, H/16, W/16, num_latents]."""

  def __init__(self, num_filters, num_latents=None, name="analysis"):
    super().__init__(name=name)
    self.add(tf.keras.layers.Lambda(lambda x: x / 255.))
    for i in range(3):
      self.add(signal_conv(num_filters, 5, f"layer_{i}", down=2,
                     activation=tfc.GDN(name=f"gdn_{i}")))
    self.add(signal_conv(num_latents or num_filters, 5, "layer_3", down=2,
                         bias=False))


class SynthesisTransform(LayerStack):
  """y_hat [B, h, w, num_latents] -> x_hat [B, 16h, 16w, 3] in [0, 255] (unclipped)."""

  def __init__(self, num_filters, name="synthesis"):
    super().__init__(name=name)
    for i in range(3):
      self.add(signal_conv(num_filters, 5, f"layer_{i}", up=2,
                     activation=tfc.GDN(name=f"igdn_{i}", inverse=True)))
    self.add(signal_conv(3, 5, "layer_3", up=2))
    self.add(tf.keras.layers.Lambda(lambda x: x * 255.))


class HyperAnalysisTransform(LayerStack):
  """y [B, h, w, N] -> z [B, h/4, w/4, out_channels] (3x3/1, 5x5/2, 5x5/2, ReLU)."""

  def __init__(self, num_filters, out_channels=None, name="hyper_analysis"):
    super().__init__(name=name)
    self.add(signal_conv(num_filters, 3, "layer_0", activation=tf.nn.relu))
    self.add(signal_conv(num_filters, 5, "layer_1", down=2, activation=tf.nn.relu))
    self.add(signal_conv(out_channels or num_filters, 5, "layer_2", down=2,
                   bias=out_channels is not None))


class HyperSynthesisTransform(LayerStack):
  """z_hat [B, h/4, w/4, N] -> [B, h, w, out_channels] (5x5 up2, 5x5 up2, 3x3, ReLU)."""

  def __init__(self, num_filters, out_channels, name="hyper_synthesis"):
    super().__init__(name=name)
    self.add(signal_conv(num_filters, 5, "layer_0", up=2, activation=tf.nn.relu))
    self.add(signal_conv(num_filters, 5, "layer_1", up=2, activation=tf.nn.relu))
    self.add(signal_conv(out_channels, 3, "layer_2", up=1))
