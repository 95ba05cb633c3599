"""ALGNet on 1x2-uniform and 2x2-uniform, with the shared protocol's regret next to the
misreporter's.  Same script as ``bench/regretnet.py`` with the ALGNet cases by default;
see its docstring for the options.  Writes ``bench/results/algnet-*.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from regretnet import main  # noqa: E402

if __name__ == "__main__":
    main(default_method="algnet")
