"""The design layer: every registered method through train -> save -> load -> evaluate,
typed options refused up front, stateless methods, pinned numbers, the import graph."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import automech
from automech.errors import AutomechError, OptionError
from automech.experiment import resolve_options, train
from automech.methods import METHODS, REGISTRY, get_method
from automech.problems import get_setting, setting_names
from automech.training import GradientMethod, SoftmaxOptions, TrainerOptions

sys.path.insert(0, str(Path(__file__).parent))
import pins  # noqa: E402

SRC = Path(automech.__file__).parent
CASES = {m: (s, o) for m, s, o in pins.CASES}
PINNED = json.loads(pins.PINNED.read_text())


@pytest.fixture
def one_thread():
    """Pinned numbers were recorded with one torch thread (sums in the same order)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(method: str) -> tuple[str, dict]:
    """A setting the method applies to and a budget of a second or two: the pinned case
    where there is one, else the first named setting it applies to with the smallest
    budget its options allow."""
    if method in CASES:
        return CASES[method]
    meth = get_method(method)
    names = {f.name for f in dataclasses.fields(meth.Options)}
    budget = {"steps": 2, "batch_size": 64, "validation_samples": 64, "validate_every": 1}
    for name in setting_names():
        s = get_setting(name)
        if getattr(s, "kind", "static") == meth.kind and not meth.applicable(s):
            return name, {k: v for k, v in budget.items() if k in names}
    pytest.skip(f"no named setting for {method}")


# ------------------------------------------------------------------ every method


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_saves_loads_and_evaluates(method, tmp_path):
    setting, options = tiny(method)
    meth = METHODS[method]
    before = dict(vars(meth))
    mech, run = train(
        setting, method, options, seed=1, out=tmp_path / "run", eval_samples=512, search=None
    )
    assert vars(meth) == before, "a method must keep no run state"
    for name in ("config.json", "checkpoint.pt", "metrics.json"):
        assert (run.path / name).is_file()
    config = json.loads((run.path / "config.json").read_text())
    assert config["options"] == resolve_options(meth, mech.setting, options).to_dict()
    loaded = automech.load(run.path)
    assert type(loaded) is type(mech)
    report = automech.evaluate(loaded, loaded.setting, samples=512, search=None)
    metrics = run.read_json("metrics.json")
    assert report.to_dict()["revenue"] == pytest.approx(metrics["revenue"], rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("method", [m for m, _, _ in pins.CASES])
def test_pinned_short_runs_are_unchanged(method, one_thread):
    setting, options = CASES[method]
    got = pins.run_case(method, setting, options)
    want = PINNED[pins.key(method, setting)]
    assert got["val_objective"] == pytest.approx(want["val_objective"], rel=1e-6, abs=1e-9)
    assert got["revenue"] == pytest.approx(want["revenue"], rel=1e-6, abs=1e-9)
    assert got["welfare"] == pytest.approx(want["welfare"], rel=1e-6, abs=1e-9)


def test_every_learned_method_is_registered_with_its_mechanism():
    for name in REGISTRY:
        meth = METHODS[name]
        assert meth.name == name
        assert meth.mechanism is not None, f"{name} declares no mechanism class"
        assert meth.describe(), f"{name} has no one-line description"


# ------------------------------------------------------------------ options


#: A valid value, different from the usual default, of every shared trainer option.
TRAINER_VALUES = {
    "steps": 3,
    "batch_size": 64,
    "chunk_size": 32,
    "lr": 2e-3,
    "lr_final": 1e-4,
    "lr_schedule": "linear",
    "validate_every": 1,
    "validation_samples": 128,
    "checkpoint_every": 1,
    "log_every": 1,
    "keep_best": True,
    "temperature": 50.0,
    "temperature_final": 60.0,
    "temperature_schedule": "linear",
}


@pytest.mark.parametrize("key", list(TRAINER_VALUES))
@pytest.mark.parametrize("method", list(REGISTRY))
def test_every_trainer_option_runs_or_is_refused_up_front(method, key, tmp_path):
    """Every trainer option on every method: refused when the options are resolved
    (before any training), or the run trains and evaluates correctly."""
    setting, options = tiny(method)
    meth = get_method(method)
    given = {**options, key: TRAINER_VALUES[key]}
    if "steps" in given and key != "steps":
        given["steps"] = min(int(given["steps"]), 3)
    try:
        resolve_options(meth, get_setting(setting), given)
    except AutomechError as err:
        assert "\n" not in str(err) and (key in str(err) or method in str(err))
        return
    mech, run = train(
        setting, method, given, seed=2, out=tmp_path / "run", eval_samples=256, search=None
    )
    assert math.isfinite(run.read_json("metrics.json")["revenue"])


@pytest.mark.parametrize(
    "method, given, name",
    [
        ("rochetnet", {"steps": -5}, "steps"),
        ("rochetnet", {"lr": 0}, "lr"),
        ("rochetnet", {"batch_size": 0}, "batch_size"),
        ("rochetnet", {"temperature": 0}, "temperature"),
        ("rochetnet", {"menu_size": 0}, "menu_size"),
        ("rochetnet", {"steps": 2.5}, "steps"),
        ("rochetnet", {"lr_schedule": "fast"}, "lr_schedule"),
        ("rochetnet", {"keep_best": "yes"}, "keep_best"),
        ("lp", {"grid": -1}, "grid"),
        ("lp", {"ic": "nash"}, "ic"),
    ],
)
def test_bad_option_values_are_refused_naming_the_option_and_range(method, given, name):
    with pytest.raises(OptionError) as err:
        get_method(method).Options.resolve(given)
    message = str(err.value)
    assert f"'{name}'" in message and method in message and "must be" in message


def test_an_option_a_method_does_not_have_is_refused():
    with pytest.raises(OptionError, match="no option 'temperature'"):
        get_method("regretnet").Options.resolve({"temperature": 10.0})
    with pytest.raises(OptionError, match="no option 'steps'"):
        get_method("grand-bundle").Options.resolve({"steps": 10})


def test_trainer_options_are_declared_not_inherited_wholesale():
    for name in REGISTRY:
        meth = METHODS[name]
        if isinstance(meth, GradientMethod):
            assert issubclass(meth.Options, TrainerOptions)
    softmax = {n for n in REGISTRY if issubclass(METHODS[n].Options, SoftmaxOptions)}
    assert "rochetnet" in softmax and "regretnet" not in softmax and "algnet" not in softmax


def test_options_describe_types_defaults_ranges_and_docs():
    infos = {i.name: i for i in get_method("rochetnet").Options.describe()}
    assert infos["menu_size"].type == "int" and infos["menu_size"].default == 64
    assert infos["menu_size"].range == ">= 1" and infos["menu_size"].doc
    assert infos["lr"].range == "> 0"
    assert next(iter(infos)) == "menu_size"  # the method's own options first
    for name in METHODS:
        for info in METHODS[name].Options.describe():
            assert info.doc, f"{name}: option {info.name} has no doc"


# ------------------------------------------------------------------ the import graph

#: Rooms, lowest first: a module may import its own room and the rooms below it.
LAYERS = [
    {"_version", "errors", "device"},
    {"problems"},
    {"mechanisms"},
    {"evaluation", "reference"},
    {"runs"},
    {"training"},
    {"methods"},
    {"experiment"},
    {"sweeps", "plot", "report", "export", "audit", "serve", "design"},
    {"cli", "__main__"},
]
RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """automech modules imported by ``path`` anywhere (functions included), except
    under ``if TYPE_CHECKING:`` (annotations only)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("automech")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("automech"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                known = (SRC.parent / sub.replace(".", "/")).with_suffix(".py").exists() or (
                    SRC.parent / sub.replace(".", "/") / "__init__.py"
                ).exists()
                found.add(sub if known else node.module)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in SRC.rglob("*.py")}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_module_imports_upward():
    upward = []
    for module, deps in _graph().items():
        if module == "automech":  # the package facade re-exports the API
            continue
        for dep in deps:
            if dep == "automech" or RANK[_room(dep)] > RANK[_room(module)]:
                upward.append(f"{module} -> {dep}")
    assert not upward, "upward imports: " + ", ".join(sorted(upward))


def test_import_graph_has_no_cycle():
    graph = _graph()
    for module in graph:  # a package depends on its __init__'s imports
        graph[module] = {d for d in graph[module] if d in graph}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1 and dep != node:
                cycle.extend(
                    stack[stack.index(dep) :] + [node, dep] if dep in stack else [node, dep]
                )
                return True
            if dep not in state and visit(dep, stack + [node]):
                return True
        state[node] = 2
        return False

    for module in graph:
        if module not in state and visit(module, []):
            break
    # a package's __init__ importing its own submodules is not a cycle of rooms
    rooms = {_room(m) for m in cycle}
    assert not cycle or len(rooms) == 1, "import cycle: " + " -> ".join(cycle)


def test_settings_and_bids_reach_numpy_outcome():
    """The registry's mechanisms answer outcome() with NumPy arrays."""
    mech, _ = (
        train("1x2-uniform", "grand-bundle", {}, seed=0, out=None, eval_samples=256, search=None)
        if False
        else (None, None)
    )
    s = get_setting("1x2-uniform")
    mech = METHODS["grand-bundle"].mechanism(s)
    alloc, pay = mech.outcome(np.array([[[0.9, 0.8]]]))
    assert isinstance(alloc, np.ndarray) and isinstance(pay, np.ndarray)
