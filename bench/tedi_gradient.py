"""How much signal TEDI's gradient estimate carries, by temperature, at a given mechanism.

For inverse temperatures beta, the covariance-trick surrogate of Eq. (12)
(:func:`automech.methods.tedi.covariance_loss`) is differentiated on ``--batches``
disjoint batches of ``--batch`` prior profiles, its chains started at every bidder's exact
choice under the mechanism (:func:`choice_state`; training starts them uniform) and mixed
by ``--mix`` rounds of the training's chain moves at beta (Langevin step ``0.4 / beta``:
the default ``eta_0 beta_0``).  Reported per beta, for the whole gradient and for its two
parts -- the direct term ``mean grad u0`` and the covariance term -- the mean cosine
between the batches' gradients (1: every batch points the same way; about 0: noise), the
mean norm of one batch's gradient and the norm of their mean; also the smoothed objective
(mean u0 over the chains) next to the exact one.
With ``--same-profiles`` every batch holds the same profiles, each with its own chains:
the cosines then measure the chains' noise alone (what a larger ``chains`` K lowers),
without the profiles' (what a larger pool of training profiles lowers).

``--chains K`` overrides the run's number of chains per profile: the noise more chains
remove is what the cosines gain.

The mechanism is a start (``--start separable``, or any other ``init``) or a trained run
(``--run DIR``)::

    python bench/tedi_gradient.py --start separable
    python bench/tedi_gradient.py --start separable --betas 50 100 200 --chains 8
    python bench/tedi_gradient.py --run bench/runs/tedi-U-3x10-cp1-cd0

Writes/updates ``bench/results/tedi_gradient.json``.  Its rows named ``snapshots=S`` and
``start=shared-bundle`` were measured with options since removed (no gain; they run at
commit ``cff777a``).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from automech.experiment import load
from automech.methods.tedi import TEDI, TEDIOptions, TEDIState, covariance_loss, move_chains
from automech.problems.registry import get_setting
from automech.runs import Run
from automech.training import FitContext

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "tedi_gradient.json"


def choice_state(mechanism, setting, drawn: int, chains: int, seed: int) -> TEDIState:
    """``drawn`` prior profiles (``seed``) with all ``chains`` chains of every bidder at
    its exact choice under ``mechanism`` -- the mode q^beta concentrates on as beta grows
    -- rather than uniform as in training (the profiles and the chains' generator are
    drawn as :meth:`TEDI.start` draws them)."""
    rng = np.random.default_rng(seed)
    pool = torch.as_tensor(setting.sample(drawn, rng), dtype=mechanism.dtype)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    with torch.no_grad():
        choice, _ = mechanism(pool)
    return TEDIState.at(pool, choice.expand(chains, -1, -1, -1).clone(), gen)


def gradient_signal(
    mechanism,
    setting,
    options: TEDIOptions,
    beta: float,
    batch: int,
    batches: int,
    mix: int,
    seed: int,
    same_profiles: bool = False,
) -> dict:
    """Cosines and norms of the per-batch gradients at ``beta`` (see the module doc)."""
    st = choice_state(
        mechanism, setting, batch if same_profiles else batch * batches, options.chains, seed
    )
    if same_profiles:
        st.pool = st.pool.repeat(batches, 1, 1)
        st.chains = st.chains.repeat(1, batches, 1, 1)
        st.scales = st.scales.repeat(1, batches, 1, 1)
    values = st.pool
    everyone = torch.arange(len(values))
    with torch.no_grad():
        alloc, pay = mechanism(values)
        exact = float(setting.objective.value(values, alloc, pay).mean())
    for _ in range(mix):
        move_chains(mechanism, st, options, everyone, beta, 0.4 / beta)
    chains = st.chains  # (K, B, n, m)
    params = [p for p in mechanism.parameters() if p.requires_grad]
    grads = {"direct": [], "covariance": [], "total": []}
    smoothed = []
    for q in range(batches):
        part = slice(q * batch, (q + 1) * batch)
        surrogate, u0 = covariance_loss(mechanism, values[part], chains[:, part], beta)
        smoothed.append(float(u0.detach()))
        for name, term in (("direct", u0), ("covariance", surrogate - u0)):
            g = torch.autograd.grad(term, params, retain_graph=name == "direct")
            grads[name].append(torch.cat([x.flatten() for x in g]))
        grads["total"].append(grads["direct"][-1] + grads["covariance"][-1])
    out = {"beta": beta, "exact_objective": exact, "smoothed_objective": float(np.mean(smoothed))}
    for name, g in grads.items():
        g = torch.stack(g)
        cos = [
            float(torch.nn.functional.cosine_similarity(g[a], g[b], dim=0))
            for a, b in itertools.combinations(range(batches), 2)
        ]
        out[name] = {
            "cosine": float(np.mean(cos)),
            "norm": float(g.norm(dim=1).mean()),
            "norm_of_mean": float(g.mean(0).norm()),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", default="U-3x10-cp1-cd0")
    ap.add_argument("--start", nargs="*", default=[], help="distilled starts to probe")
    ap.add_argument("--run", nargs="*", default=[], help="trained TEDI run directories")
    ap.add_argument("--betas", nargs="*", type=float, default=[20, 50, 100, 200, 1000])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--mix", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chains", type=int, default=0, help="K chains (0: the run's)")
    ap.add_argument(
        "--same-profiles",
        action="store_true",
        help="the same profiles in every batch: the chains' noise alone",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    setting = get_setting(args.setting)
    meth = TEDI()
    mechanisms = {}
    for start in args.start:
        opts = meth.resolve(setting, TEDIOptions.resolve({"init": start}))
        torch.manual_seed(0)  # as automech.experiment.train: nn.Linear draws from it
        ctx = FitContext(
            setting=setting,
            options=opts,
            seed=0,
            run=Run(ROOT / "runs" / f"gradient-{args.setting}-{start}"),
        )
        mech = meth.build(ctx)
        meth.initialise(mech, ctx)
        mechanisms[f"start={start}"] = (mech, opts)
    known = TEDIOptions.defaults()
    for path in args.run:
        mech = load(path)
        given = Run(Path(path)).read_json("config.json")["options"]
        # a trained run's start no longer matters; options since removed are dropped
        given = {k: v for k, v in given.items() if k in known and k != "init"}
        opts = meth.resolve(setting, TEDIOptions.resolve({**given, "init": "linear"}))
        mechanisms[f"run={Path(path).name}"] = (mech, opts)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for key, (mech, opts) in mechanisms.items():
        if args.chains:
            opts = opts.replace(chains=args.chains)
        rows = []
        for beta in args.betas:
            row = gradient_signal(
                mech,
                setting,
                opts,
                beta,
                args.batch,
                args.batches,
                args.mix,
                args.seed,
                args.same_profiles,
            )
            print(key, json.dumps(row), flush=True)
            rows.append(row)
        name = (
            key
            + (f" chains={opts.chains}" if args.chains else "")
            + (" same-profiles" * args.same_profiles)
        )
        results.setdefault(args.setting, {})[name] = {
            "batch": args.batch,
            "batches": args.batches,
            "mix_rounds": args.mix,
            "rows": rows,
        }
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
