"""Shared basics: image I/O, output paths, quality metrics, progress, test images.

Imports nothing else from tfc_inference; every other layer may import it.
"""
