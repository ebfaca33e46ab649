"""Mirrored training on two logical CPUs against the default strategy (a script).

Run by tests/test_distribution.py in its own process, since the logical devices
must be configured before TensorFlow runs its first op. Prints one JSON line:
loss terms and gradients of one global batch under both strategies, the loss
before and after a few mirrored training steps, and whether the exported run
round-trips an image.
"""

import json
import os
import sys

import tensorflow as tf

from tfc_inference import distribution
from tfc_inference import training
from tfc_inference.coding import codec
from tfc_inference.models import checkpoints
from tfc_inference.models import hyperprior
from tfc_inference.util import synthetic


def main(run_root):
  mirrored = distribution.make_strategy("mirrored", cpu_replicas=2)
  default = tf.distribute.get_strategy()
  tf.keras.utils.set_random_seed(0)
  single = hyperprior.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
  single.build_all()
  with mirrored.scope():
    model = hyperprior.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
    model.build_all()
  model.set_weight_arrays(single.weight_arrays())
  x = tf.constant(synthetic.image_batch(4, 64, 64, seed=1), tf.float32)

  # One global batch of 4: default strategy on all of it, mirrored 2 + 2.
  terms_1, grads_1 = tf.function(
      lambda x: training.global_terms_and_gradients(default, single, x, False))(x)
  batch = next(iter(mirrored.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(x))))
  terms_2, grads_2 = tf.function(
      lambda b: training.global_terms_and_gradients(mirrored, model, b, False))(batch)
  gradient_error = max(
      float(tf.norm(a - b) / (tf.norm(a) + 1e-12)) for a, b in zip(grads_1, grads_2))

  before = float(model.relaxed_rd(x, training=False)["loss"])
  path = os.path.join(run_root, "mbt2018-num_filters=8-lmbda=0.01")
  config = {"model": "mbt2018", "model_class": "MeanScaleHyperprior",
            "num_filters": 8, "lmbda": 0.01}
  data = tf.data.Dataset.from_tensors(x).repeat()
  lines = []
  training.train(model, path, data, 40, 1e-3, config=config, log_every=20,
                 save_every=40, print_fn=lines.append, strategy=mirrored)
  after = float(model.relaxed_rd(x, training=False)["loss"])

  loaded, _, run_name = checkpoints.load_run(os.path.basename(path), run_root)
  image = synthetic.test_image(64, 64, seed=2)
  y_hat, z_hat = codec.requantize(
      loaded, *codec.amortized_latents(loaded, codec.to_batch(image)))
  file_bytes = codec.encode_range_coded(loaded, run_name, "mbt2018", image, y_hat,
                                        z_hat)
  # Raises unless the file decodes to exactly these latents and reconstruction.
  result, _ = codec.verify_and_measure(loaded, image, file_bytes, y_hat.numpy(),
                                       codec.range_coded_decode_fn)
  print(json.dumps(dict(
      replicas=mirrored.num_replicas_in_sync,
      loss=[float(terms_1["loss"]), float(terms_2["loss"])],
      bpp=[float(terms_1["bpp"]), float(terms_2["bpp"])],
      mse=[float(terms_1["mse"]), float(terms_2["mse"])],
      gradient_error=gradient_error, before=before, after=after,
      logged=[line for line in lines if line.startswith("step ")],
      exported_steps=checkpoints.read_config(path)["steps"],
      round_trip_psnr=float(result["psnr"]))))


if __name__ == "__main__":
  main(sys.argv[1])
