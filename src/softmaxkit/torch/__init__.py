from softmaxkit.torch import _ops  # noqa: F401
