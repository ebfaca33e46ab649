"""Inference at compression time: rounding relaxations (`rounding`), iterative
inference with SGA and its ablations (`iterative`), and reproducible BBVI (`bbvi`).

Imports `models` and `util`.
"""
