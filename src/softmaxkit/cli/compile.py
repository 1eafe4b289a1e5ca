"""``softmaxkit compile``: compile the numba engine's kernels ahead of use (containers, CI images)."""

from __future__ import annotations

import argparse
import sys

from softmaxkit._engines import get_engine
from softmaxkit.cli import UsageError

FAMILIES = ("softmax", "cross_entropy", "logsumexp", "gradients", "pieces")
DTYPES = ("float32", "float64", "float16", "bfloat16")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compile", help="compile the numba kernels now, so that first calls load them from the cache",
        description="Compile every kernel of the numba engine for this machine and write it to Numba's "
                    "cache (seconds per kernel), so that later processes load them in milliseconds. "
                    "Run it once when building a container or CI image.")
    p.add_argument("--functions", nargs="+", choices=FAMILIES, default=None, metavar="FAMILY",
                   help=f"kernel families to compile (default: all of {', '.join(FAMILIES)})")
    p.add_argument("--dtypes", nargs="+", choices=DTYPES, default=None, metavar="DTYPE",
                   help=f"dtypes to compile for (default: all of {', '.join(DTYPES)} that are installed)")
    p.add_argument("--jobs", type=int, default=1,
                   help="processes compiling at once (default 1; one per core is fastest)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    missing = get_engine("numba").missing()
    if missing:
        raise UsageError(f"the numba engine needs {', '.join(missing)}: pip install 'softmaxkit[numba]'")
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if sys.stderr.isatty():
        print("softmaxkit compile: compiling the numba kernels for this machine (seconds each)...",
              file=sys.stderr, flush=True)
    from softmaxkit.numba import cache_status, compile_all

    seconds = compile_all(args.functions, args.dtypes, jobs=args.jobs)
    status = cache_status()
    if status.directory is None:
        print(f"compiled in {seconds:.1f} s, but not cached: no writable cache directory "
              "(set NUMBA_CACHE_DIR to a writable directory)")
        return 0
    print(f"kernels ready in {seconds:.1f} s; cache {status.directory}: "
          f"{status.cached} of {status.expected} kernel specialisations for this CPU")
    return 0
