"""softmaxkit's benchmarks: the SPEC §4 suites, runnable with ``python -m benchmarks.cpu``."""
