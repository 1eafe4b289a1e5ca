"""``python -m softmaxkit``: the ``softmaxkit`` command, for environments without the script on PATH."""

import sys

from softmaxkit.cli import main

sys.exit(main())
