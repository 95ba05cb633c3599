"""The served mechanism (`automech serve`) and its audit log (`automech log`)."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from automech import get_setting, save
from automech.audit import AUDIT_DB, AuditLog, checkpoint_sha256, open_log, realise, verify
from automech.cli import app as cli_app
from automech.experiment import load
from automech.mechanisms.classical.posted_price import PostedPrice
from automech.mechanisms.learned.affine_maximizer import LotteryAMA
from automech.mechanisms.learned.dynamic_ama import DynamicAMA
from automech.mechanisms.learned.menu import MenuMechanism
from automech.serve import ServeError, create_app
from test_cli import assert_clean_error

runner = CliRunner()


def invoke(*args):
    return runner.invoke(cli_app, [str(a) for a in args])


@pytest.fixture(scope="module")
def ama_run(tmp_path_factory):
    """A small lottery AMA on 2x2-uniform (fractional allocations, two bidders)."""
    run = tmp_path_factory.mktemp("serve") / "ama"
    save(LotteryAMA(get_setting("2x2-uniform"), allocations=16, init="random", init_seed=1), run)
    return run


@pytest.fixture(scope="module")
def client(ama_run):
    with TestClient(create_app(ama_run, max_batch=4, max_body=4000)) as c:
        yield c


def post(client, body):
    if isinstance(body, (dict, list)):
        return client.post("/auction", json=body)
    return client.post("/auction", content=body, headers={"content-type": "application/json"})


BIDS = [[0.9, 0.3], [0.4, 0.8]]


def check_outcome(out, bids, mech):
    alloc, pay = mech.outcome(np.asarray([bids]))
    assert np.allclose(out["allocation"], alloc[0], atol=1e-5)
    assert np.allclose(out["payments"], pay[0], atol=1e-5)
    real = np.asarray(out["realised_allocation"])
    assert set(real.flatten()) <= {0, 1} and (real.sum(axis=0) <= 1).all()  # unit supply
    want = realise(np.asarray(out["allocation"]), mech.setting, out["seed"])
    assert np.array_equal(real, want)


def test_single_auction_and_reproducible_draw(client, ama_run):
    mech = load(ama_run)
    first = post(client, {"bids": BIDS})
    assert first.status_code == 200, first.text
    out = first.json()
    assert {"auction_id", "allocation", "payments", "realised_allocation", "seed"} <= set(out)
    assert np.asarray(out["allocation"]).shape == (2, 2) and len(out["payments"]) == 2
    check_outcome(out, BIDS, mech)
    again = post(client, {"bids": BIDS, "seed": out["seed"]}).json()
    assert again["realised_allocation"] == out["realised_allocation"]
    assert again["auction_id"] != out["auction_id"]
    assert again["allocation"] == out["allocation"] and again["payments"] == out["payments"]


def test_batch_auction(client, ama_run):
    mech = load(ama_run)
    batch = [BIDS, [[0.1, 0.2], [0.3, 0.4]], [[1.0, 1.0], [0.0, 0.5]]]
    resp = post(client, {"bids": batch, "seed": [1, 2, 3]})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert len(out["auction_id"]) == 3 and len(set(out["auction_id"])) == 3
    assert out["seed"] == [1, 2, 3]
    for k, bids in enumerate(batch):
        one = {key: out[key][k] for key in ("allocation", "payments", "realised_allocation")}
        check_outcome(dict(one, seed=out["seed"][k]), bids, mech)
    single = post(client, {"bids": batch[1], "seed": 2}).json()
    assert single["realised_allocation"] == out["realised_allocation"][1]


def test_mechanism_and_health(client, ama_run):
    info = client.get("/mechanism").json()
    assert info["setting"] == get_setting("2x2-uniform").to_dict()
    assert info["mechanism"] == "lottery-ama"
    assert info["config"]["allocations"] == 16
    assert info["mechanism_sha256"] == checkpoint_sha256(ama_run)
    assert "description" in info and (info["description"] is None or "rule" in info["description"])
    before = client.get("/health").json()
    assert before["status"] == "ok"
    post(client, {"bids": BIDS})
    assert client.get("/health").json()["auctions"] == before["auctions"] + 1


BAD = [
    ("{bad", "malformed JSON"),
    ('{"bids": [[NaN, 0.1], [0.2, 0.3]]}', "NaN"),
    ('{"bids": [[Infinity, 0.1], [0.2, 0.3]]}', "Infinity"),
    ('{"bids": [[1e400, 0.1], [0.2, 0.3]]}', "infinite"),
    (b'{"bids": "\xff"}', "malformed JSON"),
    ("[]", "JSON object"),
    ('{"seed": 1}', "JSON object"),
    ('{"bids": [[0.1, 0.2], [0.3, 0.4]], "extra": 1}', "unknown key"),
    ('{"bids": 0.5}', "list"),
    ('{"bids": []}', "2 x 2"),
    ('{"bids": [[0.1, 0.2, 0.3], [0.3, 0.4, 0.5]]}', "shape"),
    ('{"bids": [[0.1, 0.2], [0.3]]}', "rectangular"),
    ('{"bids": [[[[0.1]]]]}', "2 x 2"),
    ('{"bids": [[-0.1, 0.2], [0.3, 0.4]]}', ">= 0"),
    ('{"bids": [[1e20, 0.2], [0.3, 0.4]]}', "<="),
    ('{"bids": [["0.1", 0.2], [0.3, 0.4]]}', "numbers"),
    ('{"bids": [[true, 0.2], [0.3, 0.4]]}', "numbers"),
    ('{"bids": [[null, 0.2], [0.3, 0.4]]}', "numbers"),
    ('{"bids": [[0.1, 0.2], [0.3, 0.4]], "seed": -1}', "seed"),
    ('{"bids": [[0.1, 0.2], [0.3, 0.4]], "seed": 1.5}', "seed"),
    ('{"bids": [[0.1, 0.2], [0.3, 0.4]], "seed": [1]}', "seed"),
    ('{"bids": [[[0.1, 0.2], [0.3, 0.4]]], "seed": [1, 2]}', "seed"),
    ('{"bids": [[[0.1, 0.2], [0.3, 0.4]]], "seed": 3}', "seed"),
    (json.dumps({"bids": [BIDS] * 5}), "1 to 4 profiles"),  # max_batch=4
    (json.dumps({"bids": [BIDS], "pad": "x" * 5000}), "over 4000 bytes"),  # max_body
    ("[" * 100_000 + "]" * 100_000, "over 4000 bytes"),
    ("[" * 1900 + "]" * 1900, "nested too deep"),
]


@pytest.mark.parametrize(("body", "fragment"), BAD)
def test_bad_requests_get_422_with_one_line(client, body, fragment):
    before = client.get("/health").json()["auctions"]
    resp = post(client, body)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    assert fragment in detail, detail
    assert client.get("/health").json()["auctions"] == before  # nothing logged


def test_other_errors_are_one_line(client, ama_run):
    assert client.get("/nowhere").status_code == 404
    resp = client.get("/auction")
    assert resp.status_code == 405 and isinstance(resp.json()["detail"], str)
    # an internal failure (the log cannot be written): 500, one line, nothing acknowledged
    app = create_app(ama_run, log_path=ama_run / "other.db")
    app.state.log.db.close()
    with TestClient(app, raise_server_exceptions=False) as broken:
        resp = post(broken, {"bids": BIDS})
    assert resp.status_code == 500
    assert resp.json()["detail"].startswith("internal error") and "auction_id" not in resp.text


def test_refuses_runs_with_ir_violations_or_infeasibility(tmp_path, monkeypatch):
    run = tmp_path / "pp"
    save(PostedPrice(get_setting("2x2-uniform"), prices=[0.5, 0.5]), run)
    for key in ("ir_violation_rate", "infeasible_rate"):
        metrics = {"ir_violation_rate": 0.0, "infeasible_rate": 0.0, key: 0.01}
        (run / "metrics.json").write_text(json.dumps(metrics))
        with pytest.raises(ServeError, match=key):
            create_app(run)
        assert_clean_error(invoke("serve", run, "--port", "1"), "refusing to serve", key)
    (run / "metrics.json").unlink()
    create_app(run)  # no metrics.json: a quick evaluation, which passes

    class Overcharging(PostedPrice):
        def forward(self, bids):
            alloc, pay = super().forward(bids)
            return alloc, pay + 0.1

    over = Overcharging(get_setting("2x2-uniform"), prices=[0.5, 0.5])
    monkeypatch.setattr("automech.serve.load", lambda path: over)
    with pytest.raises(ServeError, match="ir_violation_rate is .* in a quick evaluation"):
        create_app(run)


def test_refuses_dynamic_runs(tmp_path):
    run = tmp_path / "dyn"
    save(DynamicAMA(get_setting("seq-sales-2x2")), run)
    with pytest.raises(ServeError, match="dynamic"):
        create_app(run)
    assert_clean_error(invoke("serve", run), "dynamic")


def test_log_lists_and_verifies_and_finds_tampering(tmp_path):
    run = tmp_path / "menu"
    save(MenuMechanism(get_setting("1x2-uniform"), menu_size=8, init_seed=2), run)
    with TestClient(create_app(run)) as c:
        ids = [post(c, {"bids": [[0.2 * k, 0.9 - 0.2 * k]]}).json()["auction_id"] for k in range(4)]
        batch = post(c, {"bids": [[[0.5, 0.5]], [[0.7, 0.1]]]}).json()["auction_id"]
    result = invoke("log", run)
    assert result.exit_code == 0, result.output
    assert "6 auction(s)" in result.stdout and "verified: all 6 entries" in result.stdout
    data = json.loads(invoke("log", run, "--json", "--last", "2").stdout)
    assert data["entries"] == 6 and data["verified"] is True
    assert [e["id"] for e in data["shown"]] == batch
    assert {"bids", "allocation", "payments", "realised", "seed", "time"} <= set(data["shown"][0])
    assert json.loads(invoke("log", run, "--json").stdout)["shown"][0]["id"] == ids[0]

    db = sqlite3.connect(run / AUDIT_DB)
    db.execute("UPDATE auctions SET payments = '[0.123]' WHERE seq = 2")
    db.commit()
    db.close()
    assert_clean_error(invoke("log", run), "1 of 6 entries", "entry 2", "payments differ")
    assert invoke("log", run, "--no-verify").exit_code == 0
    db = sqlite3.connect(run / AUDIT_DB)
    db.execute("UPDATE auctions SET realised = '[[0, 0]]', payments = '[0.0]' WHERE seq = 3")
    db.commit()
    db.close()
    with open_log(run / AUDIT_DB) as log:
        entries = list(log.entries())
    problems = verify(entries, load(run), checkpoint_sha256(run)).problems
    assert len(problems) == 2 and "entry 2" in problems[0] and "entry 3" in problems[1]

    save(MenuMechanism(get_setting("1x2-uniform"), menu_size=8, init_seed=3), run)  # replaced
    assert_clean_error(invoke("log", run), "6 of 6 entries", "mechanism hash")
    with pytest.raises(ServeError, match="another mechanism"):
        create_app(run)  # never mixes two mechanisms' auctions in one log
    create_app(run, log_path=tmp_path / "new.db")
    assert_clean_error(invoke("log", tmp_path / "nowhere"), "no audit log")


@pytest.mark.parametrize(
    "name", ["2x2-uniform", "1x2-uniform", "2x2-unit-uniform", "1x2-unit-uniform", "U-3x2-cp1-cd0"]
)
def test_realised_allocations_follow_the_lottery(name):
    s = get_setting(name)
    n, m = s.shape
    rng = np.random.default_rng(0)
    x = rng.random((n, m))
    if s.unit_supply:
        x /= np.maximum(x.sum(axis=0), 1.0) * 1.1
    if s.unit_demand:
        x /= np.maximum(x.sum(axis=1, keepdims=True), 1.0) * 1.1
    draws = np.stack([realise(x, s, seed) for seed in range(3000)])
    assert set(np.unique(draws)) <= {0, 1}
    if s.unit_supply:
        assert (draws.sum(axis=1) <= 1).all()
    if s.unit_demand:
        assert (draws.sum(axis=2) <= 1).all()
    se = np.sqrt(x * (1 - x) / len(draws)) + 1e-3
    assert (np.abs(draws.mean(axis=0) - x) <= 5 * se).all()
    assert np.array_equal(realise(x, s, 7), realise(x, s, 7))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_audit_log_survives_kill_9_of_the_server(tmp_path):
    run = tmp_path / "menu"
    save(MenuMechanism(get_setting("1x2-uniform"), menu_size=8, init_seed=4), run)
    port = _free_port()
    cmd = [sys.executable, "-c", "from automech.cli import main; main()", "serve", str(run)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    acked = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the server did not start in 60 s"
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            for k in range(12):
                resp = http.post("/auction", json={"bids": [[0.08 * k, 0.5]]})
                assert resp.status_code == 200, resp.text
                acked.append(resp.json()["auction_id"])
    finally:
        proc.kill()  # SIGKILL: no shutdown, no flush
        proc.wait(timeout=10)
    assert proc.returncode == -9
    data = json.loads(invoke("log", run, "--json").stdout)
    assert data["verified"] is True
    assert [e["id"] for e in data["shown"]] == acked


def test_audit_log_is_wal_and_commits_each_record(tmp_path):
    log = AuditLog(tmp_path / "a.db")
    assert log.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert log.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert (
        AuditLog(tmp_path / "b.db", fsync=True).db.execute("PRAGMA synchronous").fetchone()[0] == 2
    )  # FULL
    row = dict(id="x", time="t", mechanism_sha256="h", bids=[[1.0]], allocation=[[1.0]])
    log.record([dict(row, payments=[0.5], realised=[[1]], seed=3)])
    other = sqlite3.connect(tmp_path / "a.db")  # another connection sees it: committed
    assert other.execute("SELECT COUNT(*) FROM auctions").fetchone()[0] == 1
