"""Serving: `proml serve` under load on loopback, with the world's job-recommendation model and 10k candidates
per query, exhaustive and phased.

    python bench/bench_serving.py [--seconds 30] [--rate 100]

1. A world with 10,000 jobs (5,000 members) is generated, its features materialized offline and online
   (SQLite), and two programs are trained, published and deployed: the world program (phased: a cheap score
   keeps 500 of the 10,000 candidates before GLMix) and the same program without its KEEP (exhaustive:
   GLMix on every candidate).
2. `proml serve` runs as its own process. An open-loop generator sends `POST /v1/rank` (a random member,
   k=25, every deployed job as a candidate) at a fixed rate; each latency is measured from the request's
   *scheduled* send time, so a stalled server cannot hide queueing (no coordinated omission).
3. A closed loop with 4 concurrent clients finds the maximum throughput.
4. Floors, measured in the same run: the ranking engine alone in-process (the same deployed model,
   online reads included, no HTTP), and the HTTP round trip of an empty FastAPI endpoint served by uvicorn
   at the same rate. Their sum is the least a request can cost; the ratio says what the service adds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "proml_lab" / "worlds" / "programs" / "job_recommendations.quasar"
FEATURES = ROOT / "proml_lab" / "worlds" / "feature_definitions"
KEEP_LINE = "KEEP TOP 500 DOCUMENTS BY cheap_score;"
N_JOBS, N_MEMBERS = 10_000, 5_000


def build(root: Path) -> object:
    from proml_lab.deploy.deployer import Deployer
    from proml_lab.deploy.registry import ModelRegistry
    from proml_lab.settings import Settings
    from proml_lab.training.pipeline import train_program
    from proml_lab.workspace import Workspace
    from proml_lab.worlds import generate_world

    ws = Workspace.init(root, settings=Settings(home=root, spark_master="local[2]"))
    world = generate_world("tiny", seed=0, workspace=ws, n_jobs=N_JOBS, n_members=N_MEMBERS, n_companies=1_000,
                           n_impressions=200_000)
    ws.features.apply(str(FEATURES))
    ws.features.materialize(online=True, as_of=dt.datetime.fromisoformat(world.info["end"]).replace(
        tzinfo=dt.timezone.utc))
    phased = PROGRAM.read_text(encoding="utf-8")
    assert KEEP_LINE in phased, "the world program changed: update KEEP_LINE"
    exhaustive = phased.replace(KEEP_LINE, "").replace("MODEL world_job_recommendations;",
                                                         "MODEL world_job_recommendations_exhaustive;")
    registry, deployer = ModelRegistry(ws), Deployer(ws)
    for name, source in (("jobs_phased", phased), ("jobs_exhaustive", exhaustive)):
        model = train_program(ws, source, filename=f"{name}.quasar").model
        version = registry.publish(model, name=name).version
        deployer.deploy(name, version=version, alias="champion")
    return ws


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


async def open_loop(url: str, path: str, bodies: list[dict], rate: float, seconds: float) -> dict:
    """Send at a fixed rate regardless of answers; latency from each request's scheduled time."""
    import httpx

    n = int(rate * seconds)
    latencies = np.full(n, np.nan)
    errors = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.05

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = t0 + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                r = await client.post(path, json=bodies[i % len(bodies)])
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies[i] = loop.time() - scheduled
            errors += not ok

        started = loop.time()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = loop.time() - started
    ms = latencies * 1000
    return {"requests": n, "errors": errors, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "achieved_rps": n / wall}


async def closed_loop(url: str, bodies: list[dict], clients: int, seconds: float) -> dict:
    import httpx

    done = errors = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        loop = asyncio.get_running_loop()
        stop = loop.time() + seconds

        async def worker(k: int) -> None:
            nonlocal done, errors
            i = k
            while loop.time() < stop:
                r = await client.post("/v1/rank", json=bodies[i % len(bodies)])
                done += 1
                errors += r.status_code != 200
                i += clients

        started = loop.time()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall = loop.time() - started
    return {"rps": done / wall, "errors": errors}


def engine_floor(ws: object, name: str, members: np.ndarray) -> float:
    """Median ms of the deployed model ranking in-process: online reads + engine, no HTTP."""
    from proml_lab.deploy.deployer import resolve
    from proml_lab.serving.models import ServingModel

    features = ws.features
    model = ServingModel(resolve(ws, name, "champion"), features=features, store=features.online_store)
    for m in members[:20]:
        model.rank(int(m), k=25)
    times = []
    for m in members[:300]:
        t = time.perf_counter()
        model.rank(int(m), k=25)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


EMPTY_APP = """
from fastapi import FastAPI
app = FastAPI()
@app.post("/v1/rank")
async def rank(body: dict) -> dict:
    return {"items": []}
@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=100.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="proml-bench-serving-") as tmp:
        t = time.perf_counter()
        ws = build(Path(tmp) / "ws")
        print(f"world built, trained, published, deployed in {time.perf_counter() - t:.0f} s", flush=True)
        members = rng.integers(1, N_MEMBERS + 1, 10_000)
        floors = {name: engine_floor(ws, name, members) for name in ("jobs_phased", "jobs_exhaustive")}
        print("engine floors (ms):", floors, flush=True)

        empty = Path(tmp) / "empty_app.py"
        empty.write_text(EMPTY_APP)
        port = free_port()
        proc = start([sys.executable, "-m", "uvicorn", "empty_app:app", "--port", str(port), "--log-level",
                      "warning", "--no-access-log"], port, env={"PYTHONPATH": tmp})
        try:
            asyncio.run(open_loop(f"http://127.0.0.1:{port}", "/v1/rank", [{"model": "x"}], 20, 5))  # warm up
            http = asyncio.run(open_loop(f"http://127.0.0.1:{port}", "/v1/rank", [{"model": "x"}], args.rate,
                                         min(args.seconds, 10)))
        finally:
            proc.terminate()
            proc.wait(10)
        print("http floor:", http, flush=True)

        port = free_port()
        proc = start([sys.executable, "-c", "from proml_lab.cli import main; main()", "serve", "--home",
                      str(ws.root), "--port", str(port), "--preload", "jobs_phased", "--preload",
                      "jobs_exhaustive"], port)
        url = f"http://127.0.0.1:{port}"
        results = {}
        try:
            for name in ("jobs_phased", "jobs_exhaustive"):
                bodies = [{"model": name, "member_id": int(m), "k": 25} for m in members]
                asyncio.run(open_loop(url, "/v1/rank", bodies[:100], 20, 5))  # warm up
                results[name] = asyncio.run(open_loop(url, "/v1/rank", bodies, args.rate, args.seconds))
                results[name]["max_rps"] = asyncio.run(closed_loop(url, bodies, 4, 10))["rps"]
                print(name, results[name], flush=True)
        finally:
            proc.terminate()
            proc.wait(10)

    rows = []
    for name, label in (("jobs_phased", "phased (KEEP TOP 500 by a cheap score)"),
                        ("jobs_exhaustive", "exhaustive (GLMix on every candidate)")):
        r = results[name]
        floor = floors[name] + http["p50_ms"]
        rows.append([f"{label}, 10k candidates, {args.rate:.0f} req/s for {args.seconds:.0f} s",
                     f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.0f} ms",
                     f"{r['errors']} / {r['requests']}", f"{r['achieved_rps']:.0f} req/s",
                     f"{r['max_rps']:.0f} req/s",
                     f"engine {floors[name]:.1f} + HTTP {http['p50_ms']:.1f} = {floor:.1f} ms",
                     f"{r['p50_ms'] / floor:.2f}x", "p99 <= 50 ms, 0 errors"])
    save("serving", title="Serving: proml serve under loopback load, 10k candidates per query",
         command="python bench/bench_serving.py", columns=[
             "load", "latency (from scheduled send)", "errors", "achieved", "max throughput (4 clients)",
             "floor (p50)", "p50 / floor", "target"], rows=rows,
         notes=("World: 10,000 jobs, 5,000 members, SQLite online store. Each request ranks every deployed job "
                "for a random member (k=25): member features and coefficients read online, candidates from "
                "the memory-mapped forward index. The load generator runs on the same 2 cores as the server. "
                f"HTTP floor: an empty FastAPI endpoint under uvicorn at the same rate, p50 {http['p50_ms']:.1f} "
                f"ms, p99 {http['p99_ms']:.1f} ms."),
         extra={"results": results, "engine_floor_ms": floors, "http_floor": http})


if __name__ == "__main__":
    main()
