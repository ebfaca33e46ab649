"""tfc_inference: better inference at compression time for tfc hyperprior codecs.

Implements Yang, Bamler & Mandt, "Improving Inference for Neural Image Compression"
(NeurIPS 2020) and "Variable-Bitrate Neural Compression via Bayesian Arithmetic
Coding" (ICML 2020) on top of TensorFlow Compression.
"""

__version__ = "0.1.0"
