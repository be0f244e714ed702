"""Benchmark: how long `spotme-hub` takes to start, against `python -c pass` in the same run.

Each round runs every case once, in turn (so a noisy minute hits all of them), as a fresh
process with the interpreter the hub is installed in:

- `--version`, `--help`, `config check` on `configs/example.yaml`, `records --limit 1` on a
  store with a few records;
- `run` until `GET /readyz` answers, and until `GET /api/v1/devices` shows its ZK terminal UP;
- `run` with one ZK terminal (the simulator, holding `--punches` records) and the reference core:
  from process start to the core holding every punch.

The simulator and the reference core run in this process, started before the clock does.
Prints the median, spread and the ratio to `python -c pass` for each case.

The processes run as an installed hub does, with its modules' bytecode cached: they write it to
a cache of their own (`PYTHONPYCACHEPREFIX`, even where `PYTHONDONTWRITEBYTECODE` is set), and a
first round that fills it is not counted. `--cold`: the processes write no bytecode and read only
what lies beside the modules already (the libraries' installed bytecode; a checkout that never
wrote its own compiles the hub's modules at every start).

    .venv/bin/python bench/startup.py [--rounds 7] [--punches 1000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from spotme_hub.adapters.zkteco.simulator import ZKSimulator
from spotme_hub.forward.core_sim import CoreServer, CoreState, free_port

ROOT = Path(__file__).resolve().parent.parent
HUB = [sys.executable, "-m", "spotme_hub.cli"]
#: the secrets `configs/example.yaml` reads from the environment
EXAMPLE_SECRETS = ("PJY_MQTT_PASSWORD", "PJY_OSDP_SCBK", "SPOTME_ADMIN_TOKEN", "SPOTME_CORE_TOKEN",
                   "SPOTME_FEED_TOKEN", "SPOTME_HR_TOKEN")  # fmt: skip


#: the environment of every process measured (see the module's docstring)
ENV = dict(os.environ)


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        argv, check=True, stdout=subprocess.DEVNULL, env={**ENV, **(env or {})}, cwd=ROOT
    )
    return time.perf_counter() - t0


def get(port: int, path: str) -> tuple[int, bytes] | None:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except OSError:
        return None


def run_until(cfg: Path, done: Callable[[], bool], timeout: float = 60) -> float:
    """Start `spotme-hub run`, poll `done` every 5 ms; the seconds from spawn to done."""
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [*HUB, "run", "-c", str(cfg)], cwd=ROOT, env=ENV, stderr=subprocess.DEVNULL
    )
    try:
        while not done():
            if p.poll() is not None:
                raise SystemExit(f"spotme-hub run exited with {p.returncode}")
            if time.perf_counter() - t0 > timeout:
                raise SystemExit("timed out")
            time.sleep(0.005)
        return time.perf_counter() - t0
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def write_config(path: Path, port: int, zk_port: int, core_url: str | None) -> None:
    core = f"core:\n  url: {core_url}\n" if core_url else ""
    path.write_text(
        f"""hub:
  data_dir: {path.parent / "data"}
api:
  listen: 127.0.0.1:{port}
{core}offices:
  - id: hq
    state: PJY
employees:
  - id: E1
    user_ids: ["1"]
devices:
  - id: zk
    kind: zkteco
    office: hq
    host: 127.0.0.1
    port: {zk_port}
    poll_every: 3600
"""
    )


def device_up(port: int) -> bool:
    got = get(port, "/api/v1/devices")
    return got is not None and got[0] == 200 and json.loads(got[1])[0]["state"] == "UP"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--punches", type=int, default=1000)
    ap.add_argument("--cold", action="store_true", help="no bytecode cache of the hub's modules")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spotme-startup-"))
    if args.cold:
        ENV["PYTHONDONTWRITEBYTECODE"] = "1"
        ENV.pop("PYTHONPYCACHEPREFIX", None)
    else:
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        ENV["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")

    sim = ZKSimulator(records=args.punches, record_size=40).start()
    # a store with the punches in it, for `records`
    seed = tmp / "seed" / "hub.yaml"
    seed.parent.mkdir()
    write_config(seed, free_port(), sim.port, None)
    run_until(seed, lambda: device_up_count(seed) >= args.punches)

    env = {"SPOTME_HUB_CONFIG": str(seed)}
    example = {v: "00" * 16 if "SCBK" in v else "x" for v in EXAMPLE_SECRETS}
    cases: dict[str, Callable[[int], float]] = {
        "python -c pass": lambda _i: timed([sys.executable, "-c", "pass"]),
        "--version": lambda _i: timed([*HUB, "--version"]),
        "--help": lambda _i: timed([*HUB, "--help"]),
        "config check (example)": lambda _i: timed(
            [*HUB, "config", "check", "-c", "configs/example.yaml"], example
        ),
        "records --limit 1": lambda _i: timed([*HUB, "records", "--limit", "1"], env),
        "run → /readyz": lambda i: ready(tmp, i, sim.port),
        "run → ZK device UP": lambda i: up(tmp, i, sim.port),
        f"run → core holds {args.punches}": lambda i: delivered(tmp, i, sim.port, args.punches),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for i in range(args.rounds + 1):  # round 0 fills the bytecode cache and is not counted
        for name, case in cases.items():
            t = case(i)
            if i:
                times[name].append(t)
        print(f"round {i}/{args.rounds} done" + (" (warm-up)" if not i else ""), file=sys.stderr)
    sim.stop()

    base = statistics.median(times["python -c pass"])
    mode = "cold: no bytecode written" if args.cold else "bytecode cached"
    print(f"{'case':28} {'median':>8} {'min':>8} {'max':>8} {'× pass':>8}   "
          f"({args.rounds} rounds, {mode})")  # fmt: skip
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:28} {m:8.3f} {min(ts):8.3f} {max(ts):8.3f} {m / base:8.1f}")


def device_up_count(cfg: Path) -> int:
    """Punches the running seed hub has committed (its own devices endpoint)."""
    port = int(cfg.read_text().split("listen: 127.0.0.1:")[1].split()[0])
    got = get(port, "/api/v1/devices")
    if got is None or got[0] != 200:
        return 0
    counters = json.loads(got[1])[0].get("counters") or {}
    return int(counters.get("new", 0)) + int(counters.get("duplicate", 0))


def fresh(tmp: Path, name: str, i: int, zk_port: int, core_url: str | None) -> tuple[Path, int]:
    d = tmp / f"{name}-{i}"
    d.mkdir()
    port = free_port()
    write_config(d / "hub.yaml", port, zk_port, core_url)
    return d / "hub.yaml", port


def ready(tmp: Path, i: int, zk_port: int) -> float:
    cfg, port = fresh(tmp, "ready", i, zk_port, None)
    return run_until(cfg, lambda: (get(port, "/readyz") or (0,))[0] == 200)


def up(tmp: Path, i: int, zk_port: int) -> float:
    cfg, port = fresh(tmp, "up", i, zk_port, None)
    return run_until(cfg, lambda: device_up(port))


def delivered(tmp: Path, i: int, zk_port: int, n: int) -> float:
    core = CoreServer(CoreState()).start()
    try:
        cfg, _port = fresh(tmp, "core", i, zk_port, core.url)
        return run_until(cfg, lambda: core.state.stored() >= n)
    finally:
        core.stop()


if __name__ == "__main__":
    main()
