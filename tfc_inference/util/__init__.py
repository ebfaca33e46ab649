"""Shared basics: image I/O, output paths, quality metrics, progress, test images,
and bit-reproducible math (`exact_math`).

Imports nothing else from tfc_inference; every other layer may import it.
"""
