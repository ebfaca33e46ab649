"""Stable names for model weights, so checkpoints load in any process.

TF variable names carry whatever Keras name scopes were open when a layer was built
(they differ, e.g., when TF is first imported inside `absl.app.run`). Keys are
therefore rebuilt from the model's attribute ("part"), the layer's own name and the
part of the variable name below that layer:
`analysis_transform/layer_0/layer_0/gdn_0/reparam_beta`, `hyperprior/DeepFactorized/bias_0`.
"""

import tensorflow as tf


class WeightMismatchError(ValueError):
  """A checkpoint that does not fit the model (missing or misshaped weights)."""


def _key(part, layer, variable, module_level):
  name = variable.name.split(":")[0]
  if module_level:  # a tf.Module such as tfc.DeepFactorized: its own scope + name
    return f"{part}/" + "/".join(name.split("/")[-2:])
  marker = layer.name + "/"
  position = name.rfind(marker)
  suffix = name[position + len(marker):] if position >= 0 else name.split("/")[-1]
  return f"{part}/{layer.name}/{layer.name}/{suffix}"


class NamedWeightsMixin:
  """Adds stable weight naming and (partial) loading to a Keras model.

  Subclasses list their weight-holding attributes in `_PARTS`: Keras stacks of
  layers (`transforms.LayerStack`, Sequential), or tf.Modules (e.g. an entropy model's density).
  """

  _PARTS = ()

  def named_weights(self):
    """Dict stable key -> tf.Variable covering every weight of the model."""
    named = {}
    for part in self._PARTS:
      module = getattr(self, part)
      is_stack = isinstance(module, tf.keras.Model)  # a stack of layers
      for layer in (module.layers if is_stack else [module]):
        for var in layer.trainable_variables + layer.non_trainable_variables:
          key = _key(part, layer, var, module_level=not is_stack)
          if key in named:
            raise AssertionError(f"weight key {key!r} is not unique")
          named[key] = var
    if len(named) != len(self.weights):
      raise AssertionError("weight naming does not cover every weight")
    return named

  def weight_arrays(self):
    """Dict key -> numpy array of all model weights (no optimizer state)."""
    return {key: var.numpy() for key, var in self.named_weights().items()}

  def set_weight_arrays(self, arrays, partial=False):
    """Assigns weights from `arrays`. With `partial`, skips absent/mismatched ones
    (e.g. to initialize one model family from another). Returns assigned keys."""
    assigned = []
    for key, var in self.named_weights().items():
      value = arrays.get(key)
      if value is None or tuple(value.shape) != tuple(var.shape):
        if partial:
          continue
        raise WeightMismatchError(
            f"checkpoint weight {key!r} is missing or has shape "
            f"{None if value is None else tuple(value.shape)}; the model expects "
            f"{tuple(var.shape)}. Is --num_filters right for this run?")
      var.assign(value)
      assigned.append(key)
    self._on_weights_loaded()
    return assigned

  def _on_weights_loaded(self):
    """Hook: drop anything derived from the old weights."""
