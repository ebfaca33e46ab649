"""Transforms built without a forward pass keep tfc's numbers and the training
checkpoints' object graph."""

import numpy as np
import tensorflow as tf

from tfc_inference.models import hyperprior
from tfc_inference.models import transforms


def test_build_stack_creates_what_a_first_call_would():
  built = transforms.SynthesisTransform(8)
  built.build_stack([None, None, None, 8])
  called = transforms.SynthesisTransform(8)
  y = tf.random.stateless_normal([1, 4, 6, 8], [0, 1])
  called(y)
  assert [v.name for v in built.weights] == [v.name for v in called.weights]
  for source, target in zip(called.weights, built.weights):
    target.assign(source)
  np.testing.assert_array_equal(built(y).numpy(), called(y).numpy())


def test_stacks_built_for_loading_take_the_same_weights():
  """`build_stack(initialize=False)` skips the random kernels (zero until
  loaded) but creates the same variables; loaded, it computes the same."""
  for make, channels in [(lambda: transforms.AnalysisTransform(8, 12), 3),
                         (lambda: transforms.SynthesisTransform(8), 12),
                         (lambda: transforms.HyperSynthesisTransform(8, 24), 8)]:
    initialized, empty = make(), make()
    initialized.build_stack([None, None, None, channels])
    empty.build_stack([None, None, None, channels], initialize=False)
    assert ([(v.name, v.shape) for v in empty.weights]
            == [(v.name, v.shape) for v in initialized.weights])
    kernels = [v for v in empty.weights if "kernel" in v.name]
    assert kernels and not any(np.any(v.numpy()) for v in kernels)
    for source, target in zip(initialized.weights, empty.weights):
      target.assign(source)
    x = tf.random.stateless_normal([1, 16, 16, channels], [4, 5])
    np.testing.assert_array_equal(empty(x).numpy(), initialized(x).numpy())


def test_stack_runs_its_layers_in_order():
  stack = transforms.HyperSynthesisTransform(8, 16)
  stack.build_stack([None, None, None, 8])
  z = tf.random.stateless_normal([2, 3, 5, 8], [2, 3])
  expected = z
  for layer in stack.layers:
    expected = layer(expected)
  np.testing.assert_array_equal(stack(z).numpy(), expected.numpy())
  assert stack(z).shape == (2, 12, 20, 16)


def test_training_checkpoint_keys_are_the_sequential_ones(tmp_path):
  """A Sequential's checkpoint names its layers layer_with_weights-<i>; runs
  resumed from train/ folders written before LayerStack must find them."""
  model = hyperprior.MeanScaleHyperprior(num_filters=8)
  model.build_all()
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
  keys = [name for name, _ in tf.train.list_variables(path)
          if name.startswith("model/")]
  assert len(keys) == len(model.weights)
  assert ("model/analysis_transform/layer_with_weights-0/_kernel_parameter/real/"
          ".ATTRIBUTES/VARIABLE_VALUE") in keys
  assert ("model/synthesis_transform/layer_with_weights-2/_activation/"
          "_gamma_parameter/variable/.ATTRIBUTES/VARIABLE_VALUE") in keys
