"""Names of the shipped runs that binaries and benchmarks default to.

No imports, so that a parent process (a benchmark timing its children) can name a
run without loading TensorFlow.
"""

# The mean-scale run at lambda=0.01 (y of 192 channels): the default of the demo
# and the benchmarks, and the run the zoo's other lambdas start from.
BASE_RUN = "mbt2018-num_filters=64-num_latents=192-lmbda=0.01"
