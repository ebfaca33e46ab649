"""Names of the shipped runs that binaries and benchmarks default to.

No imports, so that a parent process (a benchmark timing its children) can name a
run without loading TensorFlow.
"""

# The mean-scale run at lambda=0.01 with 64 hidden filters (y of 192 channels):
# the default of the demo and the benchmarks, and the run the zoo's other lambdas
# start from. The 128-filter run of the same lambda is the better model and the
# mean-scale curve's point (`checkpoints.curve_runs`); this one's synthesis takes
# about 0.28x its multiply-adds (4.2e4 against 1.5e5 per pixel).
BASE_RUN = "mbt2018-num_filters=64-num_latents=192-lmbda=0.01"

# The bits-back run at lambda=0.01, fine-tuned from BASE_RUN: the default of the
# bits-back benchmarks.
BASE_BB_RUN = "mbt2018_bb-num_filters=64-num_latents=192-lmbda=0.01"
