"""Sweeps: settings x methods x seeds (x option variants), run as independent jobs.

* :mod:`~automech.sweeps.spec` reads and validates a sweep file and expands it to jobs;
* :mod:`~automech.sweeps.store` is the results database (one SQLite file);
* :mod:`~automech.sweeps.backends` runs jobs in a local process pool or as Ray tasks;
* :mod:`~automech.sweeps.runner` ties them together (skip finished jobs, resume the rest);
* :mod:`~automech.sweeps.results` aggregates over seeds: mean, standard deviation, best.
"""

from automech.sweeps.results import aggregate, render
from automech.sweeps.runner import run_sweep
from automech.sweeps.spec import Job, Sweep, SweepError, load_sweep, parse_sweep
from automech.sweeps.store import DEFAULT_DB, Store

__all__ = [
    "Job",
    "Sweep",
    "SweepError",
    "load_sweep",
    "parse_sweep",
    "Store",
    "DEFAULT_DB",
    "run_sweep",
    "aggregate",
    "render",
]
