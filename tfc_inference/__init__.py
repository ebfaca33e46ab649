"""tfc_inference: better inference at compression time for tfc hyperprior codecs.

Implements Yang, Bamler & Mandt, "Improving Inference for Neural Image Compression"
(NeurIPS 2020) and "Variable-Bitrate Neural Compression via Bayesian Arithmetic
Coding" (ICML 2020), and relative entropy coding (iREC; Flamich, Havasi &
Hernandez-Lobato, NeurIPS 2020), on top of TensorFlow Compression.

The subpackages are layers; each imports only from the ones listed before it:

  util        images, output paths, metrics, progress, synthetic test images
  distribution  (module) tf.distribute strategies of training, and the chief
  models      the hyperprior families, the VAE, transforms, weights, run folders
  inference   rounding relaxations, iterative inference (SGA and ablations), BBVI
  coding      the file container, range coding, bits-back, Bayesian AC, iREC,
              decoding
  training    (module) the resumable training loop, on one device or several
  evaluation  R-D curves and BD-rate, the per-method encoders, the runner, plots
  cli         the absl plumbing behind examples/
"""

__version__ = "0.1.0"
