"""MyersonNet against Myerson's optimal auction (3x1 uniform and exponential priors).

Same script as ``bench/regretnet.py`` with the MyersonNet cases by default; see its
docstring for the options.  ``python bench/myersonnet.py`` takes about 15-20 minutes on a
busy 2-core machine (training dominates) and writes ``bench/results/myersonnet-*.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from regretnet import main  # noqa: E402

if __name__ == "__main__":
    main(default_method="myersonnet")
