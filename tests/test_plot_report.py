"""Figures (``automech plot``), reference data and the HTML report (``automech report``).

Two tiny runs are made once per module: a RochetNet menu on 1x2-uniform (30 steps) and a
grand-bundle auction on 2x2-uniform (multi-bidder allocation maps).  Every figure type
is rendered and checked to be a real PNG with non-blank content; the report is opened in
headless Chromium, driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: no port, no extra Python package), which checks that every
image is decoded and displayed and that the page logs no console error and requests
nothing from the network.
"""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from automech import evaluate, get_setting, load, plot
from automech.cli import app
from automech.evaluation import RegretSearch
from automech.evaluation.profiles import profile_regrets
from automech.experiment import train
from automech.mechanisms import FirstPrice, Myerson
from automech.mechanisms.learned.menu import MenuMechanism
from automech.reference import all_references, best_exact, references

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    rn = root / "rochetnet-1x2"
    train(
        get_setting("1x2-uniform"),
        "rochetnet",
        {
            "steps": 30,
            "batch_size": 1024,
            "validate_every": 10,
            "menu_size": 64,
            "validation_samples": 2048,
            "log_every": 5,
        },
        seed=0,
        out=rn,
        eval_samples=2000,
        search=RegretSearch(profiles=200),
    )
    gb = root / "grand-bundle-2x2"
    train(
        get_setting("2x2-uniform"),
        "grand-bundle",
        out=gb,
        eval_samples=2000,
        search=RegretSearch(profiles=100),
    )
    return {"rochetnet": rn, "grand-bundle": gb}


@pytest.fixture(scope="module")
def html_report(runs, tmp_path_factory):
    """The report of both runs, written through the CLI."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = runner.invoke(
        app,
        [
            "report",
            str(runs["rochetnet"]),
            str(runs["grand-bundle"]),
            "--out",
            str(out),
            "--baseline-samples",
            "2000",
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.is_file()
    return out


# ---------------------------------------------------------------------- PNG checks


def read_png(data: bytes) -> np.ndarray:
    """Pixels (H, W, 3) of a PNG, fully decoded (Pillow, matplotlib's own dependency)."""
    from PIL import Image as PILImage

    assert data[:8] == PNG_SIGNATURE, "not a PNG file"
    with PILImage.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        img.load()  # decodes every row: fails if truncated
        return np.asarray(img.convert("RGB"))


def assert_real_image(path_or_bytes, min_size=(300, 200)) -> None:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5_000, f"suspiciously small PNG ({len(data)} bytes)"
    pixels = read_png(data)
    h, w = pixels.shape[:2]
    assert w >= min_size[0] and h >= min_size[1], (w, h)
    rgb = pixels.astype(float)
    assert rgb.std() > 10, "image is (nearly) uniform"
    non_white = (rgb < 235).any(axis=-1).mean()
    assert non_white > 0.02, f"only {100 * non_white:.2f}% of pixels are drawn"
    packed = (
        (pixels[..., 0].astype(np.int32) << 16)
        | (pixels[..., 1].astype(np.int32) << 8)
        | pixels[..., 2]
    )
    colours = len(np.unique(packed))
    assert colours > 8, f"only {colours} colours"


# ---------------------------------------------------------------------- figures


def test_plot_cli_renders_every_figure_of_a_trained_menu(runs, tmp_path):
    out = tmp_path / "figs"
    result = runner.invoke(app, ["plot", str(runs["rochetnet"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = {p.stem for p in out.glob("*.png")}
    assert names == {"allocation", "menu", "training", "regret"}, names
    for path in out.glob("*.png"):
        assert_real_image(path)
    assert "skipped" not in result.stdout


def test_plot_cli_multi_bidder_classical_run(runs):
    result = runner.invoke(
        app, ["plot", str(runs["grand-bundle"]), "--bidder", "1", "--others", "mid"]
    )
    assert result.exit_code == 0, result.output
    out = runs["grand-bundle"] / "figures"  # the default folder
    assert {p.stem for p in out.glob("*.png")} == {"allocation", "regret"}
    for path in out.glob("*.png"):
        assert_real_image(path)
    assert "skipped menu" in result.stdout and "skipped training" in result.stdout


def test_plot_cli_errors_are_clean(runs, tmp_path):
    for args, fragment in (
        ([str(tmp_path / "nope")], "does not exist"),
        ([str(runs["grand-bundle"]), "--bidder", "5"], "bidder"),
        ([str(runs["grand-bundle"]), "--items", "0,x"], "--items"),
        ([str(runs["grand-bundle"]), "--others", "median"], "others"),
    ):
        result = runner.invoke(app, ["plot", *args])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert fragment in result.stderr, result.stderr


def test_python_api_figures():
    from matplotlib.figure import Figure

    # one item: curves over the bidder's value (Myerson, 2 bidders)
    setting = get_setting("2x1-uniform")
    fig = plot.allocation(Myerson(setting), setting, bidder=1)
    assert isinstance(fig, Figure)
    assert_real_image(plot.to_png(fig))
    # more than two items: a chosen pair, and small allocation matrices for the menu
    setting = get_setting("1x10-uniform")
    mech = MenuMechanism(setting, menu_size=16)
    assert_real_image(plot.to_png(plot.allocation(mech, setting, items=(2, 7), grid=41)))
    assert_real_image(plot.to_png(plot.menu(mech, setting, samples=5_000, max_entries=4)))
    grid_axes, alloc, pay = plot.outcome_grid(mech, setting, items=(2, 7), grid=11)
    assert alloc.shape == (11, 11, 10) and pay.shape == (11, 11)
    assert np.allclose(grid_axes[0], np.linspace(0, 1, 11))


def test_regret_histogram_of_a_non_truthful_mechanism():
    """Per-profile regrets reproduce the protocol's aggregate, and plot."""
    setting = get_setting("2x2-uniform")
    mech = FirstPrice(setting)
    search = RegretSearch(profiles=150, random=32, scales=8, grid=4)
    ev = evaluate(mech, setting, samples=1_000, search=search)
    regrets = profile_regrets(mech, setting, search, samples=1_000)
    assert regrets.shape == (150, 2) and (regrets >= 0).all()
    assert regrets.mean() == pytest.approx(ev.regret_mean, rel=1e-9, abs=1e-12)
    assert regrets.max() == pytest.approx(ev.regret_max, rel=1e-9)
    assert regrets.mean(axis=0) == pytest.approx(ev.regret_per_bidder, rel=1e-9)
    assert_real_image(plot.to_png(plot.regret_histogram(regrets)))


def test_run_regrets_match_the_runs_metrics(runs):
    mech = load(runs["rochetnet"])
    regrets = plot.run_regrets(mech, runs["rochetnet"])
    metrics = json.loads((runs["rochetnet"] / "metrics.json").read_text())
    assert regrets.shape == (metrics["regret_samples"], 1)
    assert regrets.mean() == pytest.approx(metrics["regret_mean"], abs=1e-12)


# ---------------------------------------------------------------------- reference data


def test_reference_numbers_are_packaged_with_sources():
    refs = all_references()
    assert len(refs) >= 30
    for ref in refs:
        get_setting(ref.setting)  # a registered name
        assert ref.kind in ("exact", "published") and ref.source and ref.revenue > 0
        assert ref.method
    assert best_exact("1x2-uniform").revenue == pytest.approx((12 + 2 * 2**0.5) / 27, abs=1e-6)
    for n in (2, 3, 5):
        exact = (n - 1) / (n + 1) + 0.5**n / (n + 1)
        assert best_exact(f"{n}x1-uniform").revenue == pytest.approx(exact, abs=1e-6)
    published = {r.method: r for r in references("2x2-uniform") if r.kind == "published"}
    assert published["RegretNet"].revenue == 0.878 and "Table 2" in published["RegretNet"].source
    # a setting built from a dict (no registered name) matches by its contents
    from automech.problems import Setting

    unnamed = Setting.from_dict(
        {"bidders": 3, "items": 10, "prior": {"kind": "uniform", "low": 0.0, "high": 1.0}}
    )
    assert {r.method for r in references(unnamed)} >= {"separate Myerson", "RegretNet"}
    assert references(get_setting("3x10-correlated")) == []


# ---------------------------------------------------------------------- the report


def test_report_content(html_report):
    text = html_report.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "Comparison" in text and "run 2" in text  # side by side
    for fragment in (
        "1x2-uniform",
        "2x2-uniform",
        "rochetnet",
        "grand-bundle",
        "Manelli",
        "RegretNet",
        "Table 2",
        "separate-myerson",
        "± ",
        "batch_size",
        "What the mechanism uses",
    ):
        assert fragment in text, fragment
    assert text.count("<img ") == 6  # rochetnet: 4 figures, grand-bundle: 2
    assert text.count('src="data:image/png;base64,') == 6
    # self-contained: nothing fetched from anywhere
    for bad in ("http://", "https://", "<script", '<link rel="stylesheet"', "url("):
        assert bad not in text, bad


def test_report_markdown_and_errors(runs, html_report, tmp_path):
    out = tmp_path / "excerpt.md"
    result = runner.invoke(
        app, ["report", str(runs["grand-bundle"]), "--out", str(out), "--baseline-samples", "2000"]
    )  # cached by html_report
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "| revenue |" in text and "grand bundle (second price" in text
    assert (tmp_path / "excerpt_files" / "allocation.png").is_file()
    result = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------- headless Chromium

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--window-size=1280,2000",
)


def find_chromium() -> str | None:
    given = os.environ.get("AUTOMECH_CHROMIUM")
    if given:
        return given
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def browser_required() -> bool:
    """CI (``CI`` set, or ``AUTOMECH_REQUIRE_BROWSER=1`` from ``.ci/run``) must run the
    browser test; elsewhere it is skipped when no Chromium is installed."""
    flag = os.environ.get("AUTOMECH_REQUIRE_BROWSER") or os.environ.get("CI") or ""
    return flag.lower() not in ("", "0", "false", "no")


class DevTools:
    """Chromium driven over ``--remote-debugging-pipe``: JSON messages separated by NUL
    bytes, commands written to the browser's fd 3, replies and events read from its fd 4."""

    def __init__(self, binary: str, profile: Path, log: Path, timeout: float = 90.0) -> None:
        def high(fd: int) -> int:  # keep the pipe ends clear of fds 3 and 4
            import fcntl

            new = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
            os.close(fd)
            return new

        to_read, self._to_write = (high(fd) for fd in os.pipe())  # browser reads fd 3
        self._from, from_write = (high(fd) for fd in os.pipe())  # browser writes fd 4
        # bash (not dash) moves them to 3 and 4: dash cannot name fds above 9
        cmd = [
            shutil.which("bash") or "/bin/bash",
            "-c",
            f'exec "$0" "$@" 3<&{to_read} 4>&{from_write} {to_read}<&- {from_write}>&-',
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            cmd,
            pass_fds=(to_read, from_write),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        os.close(to_read)
        os.close(from_write)
        self.timeout = timeout
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read_messages(self, wait: float) -> list[dict]:
        ready, _, _ = select.select([self._from], [], [], wait)
        if not ready:
            return []
        chunk = os.read(self._from, 1 << 20)
        if not chunk:
            raise RuntimeError(f"Chromium closed the pipe (exit code {self.proc.poll()})")
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\0")
        return [json.loads(m) for m in complete if m]

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        msg: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_write, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for reply in self._read_messages(0.2):
                if reply.get("id") == msg["id"]:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
                self.events.append(reply)
        raise TimeoutError(f"no reply to {method} within {self.timeout} s")

    def wait_event(self, method: str, session: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            self.events.extend(self._read_messages(0.2))
        raise TimeoutError(f"no {method} event within {self.timeout} s")

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.events.extend(self._read_messages(0.05))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 - the browser may already be gone
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_write, self._from):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()


IMAGES_JS = """
Promise.all(Array.from(document.images).map(img =>
  img.decode().then(() => true, () => false).then(decoded => {
    const box = img.getBoundingClientRect();
    const style = getComputedStyle(img);
    return {alt: img.alt.slice(0, 40), decoded: decoded, complete: img.complete,
            naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
            width: box.width, height: box.height,
            visible: style.display !== "none" && style.visibility !== "hidden"};
  })))
"""


def console_errors(events: list[dict], session: str) -> list[str]:
    """Console errors, uncaught exceptions, browser log errors and failed loads."""
    errors = []
    for ev in events:
        if ev.get("sessionId") != session:
            continue
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(
                "console: "
                + " ".join(
                    str(a.get("value", a.get("description"))) for a in params.get("args", [])
                )
            )
        elif method == "Runtime.exceptionThrown":
            errors.append("exception: " + json.dumps(params.get("exceptionDetails"))[:300])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(
                f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}"
            )
        elif method == "Network.loadingFailed":
            errors.append(f"failed load: {params.get('errorText')}")
    return errors


def test_report_loads_in_headless_chromium(html_report, tmp_path):
    binary = find_chromium()
    if binary is None:
        if browser_required():
            pytest.fail(
                "Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
            )
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    browser = DevTools(binary, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=session)
        nav = browser.call(
            "Page.navigate", {"url": html_report.resolve().as_uri()}, session=session
        )
        assert not nav.get("errorText"), nav
        browser.wait_event("Page.loadEventFired", session)
        result = browser.call(
            "Runtime.evaluate",
            {"expression": IMAGES_JS, "awaitPromise": True, "returnByValue": True},
            session=session,
        )
        assert "exceptionDetails" not in result, result
        images = result["result"]["value"]
        title = browser.call(
            "Runtime.evaluate",
            {"expression": "document.title", "returnByValue": True},
            session=session,
        )["result"]["value"]
        browser.drain(0.5)  # late console messages, if any
    finally:
        browser.close()
    assert title == "automech report"
    assert len(images) == 6, images
    for img in images:
        assert img["decoded"] and img["complete"], img
        assert img["naturalWidth"] > 300 and img["naturalHeight"] > 200, img
        assert img["width"] > 100 and img["height"] > 50 and img["visible"], img
    assert console_errors(browser.events, session) == []
    requested = [
        ev["params"]["request"]["url"]
        for ev in browser.events
        if ev.get("method") == "Network.requestWillBeSent" and ev.get("sessionId") == session
    ]
    assert requested, "the page load was not observed"
    schemes = {url.split(":", 1)[0] for url in requested}
    assert schemes <= {"file", "data", "about"}, requested
