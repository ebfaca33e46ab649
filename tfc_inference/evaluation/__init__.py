"""Measuring methods: R-D curves, CSVs and Bjontegaard metrics (`rd_curves`), one
encoder per method and their registry (`registry`), the sharded, resumable
runner (`runner`), `bd_rate` and `plot` (`reports`), the
Bayesian AC sweep (`bayesian_ac_sweep`) and plots (`plots`).

Imports everything below it; only `cli` and the binaries import it.
"""
