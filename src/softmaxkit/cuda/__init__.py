"""CUDA engine (in progress)."""
