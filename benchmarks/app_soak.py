"""Soak of the web demo: one ``python app.py`` on 127.0.0.1, 50 mixed calls from 4
``gradio_client`` clients at once (reconstructions, refused bad inputs, animations, part
views), every answer checked, and the server's memory (RSS) after the first run and after all.

    python benchmarks/app_soak.py [--calls 50] [--clients 4] [--checkpoint SRC] [--threads 1]

Checkpoint: SRC, else the bundled ``checkpoints/humansplat-tiny`` (else an untrained ``tiny``,
as in ``app_cold_start.py``). The first call (a reconstruction) runs alone; its RSS is the
reference. Target (issue 19): every answer correct, RSS after the soak within 20 % of it.
Writes ``benchmarks/results/app_soak.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from app_cold_start import checkpoint  # noqa: E402
from common import machine_info, write_result  # noqa: E402

EXAMPLE = ROOT / "examples" / "astronaut.jpg"


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (the pipeline runs in-process; the
    children are helpers such as ffmpeg)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def photos(tmp: Path, n: int) -> list[Path]:
    """n photos of the example person with bytes of their own (mirrored, shifted crops)."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    out = []
    for i in range(n):
        a = img[:, ::-1] if i % 2 else img
        a = a[:, 4 * i:]
        p = tmp / f"visitor{i}.png"
        Image.fromarray(np.ascontiguousarray(a)).save(p)
        out.append(p)
    return out


def make_plan(n_calls: int, n_clients: int) -> list[list[str]]:
    """Per client, a sequence of call kinds; the mix cycles reconstruct, part views, bad
    inputs and animations (a client reconstructs before it animates or views parts)."""
    cycle = ["good", "part", "bad_type", "animate", "bad_photo", "part", "good", "bad_range",
             "animate", "part", "bad_server_path", "good", "animate"]
    plans = [[] for _ in range(n_clients)]
    remaining = n_calls - 1  # the first call (a reconstruction) runs alone
    i = 0
    while remaining > 0:
        for c in range(n_clients):
            if remaining == 0:
                break
            plans[c].append(cycle[i % len(cycle)])
            remaining -= 1
        i += 1
    for plan in plans:  # every client starts with a reconstruction
        if plan and plan[0] != "good":
            plan.insert(0, "good")
            plan.pop()
    return plans


class Checker:
    def __init__(self, tmp: Path, server_url: str):
        self.tmp, self.url = tmp, server_url
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.failures: list[str] = []
        self.seconds: dict[str, list[float]] = {}

    def record(self, kind: str, ok: bool, took: float, detail: str = "") -> None:
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.seconds.setdefault(kind, []).append(took)
            if not ok:
                self.failures.append(f"{kind}: {detail}")

    def run_client(self, index: int, plan: list[str], client, photo: Path) -> None:
        import imageio.v3 as iio
        from gradio_client import handle_file

        from humansplat.webapp.result_views import ANIMATION_FRAMES

        bad_photo = self.tmp / f"notes{index}.jpg"
        bad_photo.write_text("not an image")
        seed = 100 * index
        for kind in plan:
            t0 = time.perf_counter()
            try:
                if kind == "good":
                    seed += 1
                    out = client.predict(handle_file(str(photo)), seed=seed,
                                         api_name="/reconstruct")
                    meta = json.loads(Path(out[4]).read_text())
                    n = meta["num_gaussians"]
                    ok = (meta["seed"] == seed and Path(out[1]).stat().st_size == 32 * n
                          and n > 0 and Path(out[0]).stat().st_size > 0)
                    detail = f"seed {meta['seed']} vs {seed}, n={n}"
                elif kind == "part":
                    part = ["all", "head", "photo", "torso"][seed % 4]
                    data = Path(client.predict(part, api_name="/part_view")).read_bytes()
                    ok, detail = len(data) > 0 and len(data) % 32 == 0, f"{len(data)} bytes"
                elif kind == "animate":
                    mp4 = client.predict(["walk", "wave", "turn"][seed % 3],
                                         api_name="/animate")
                    frames = sum(1 for _ in iio.imiter(mp4))
                    ok, detail = frames == ANIMATION_FRAMES, f"{frames} frames"
                else:
                    ok, detail = self.refused(client, kind, photo, bad_photo)
            except Exception as err:  # noqa: BLE001 - an unexpected failure is a wrong answer
                ok, detail = False, f"{type(err).__name__}: {str(err)[:200]}"
            self.record(kind, ok, time.perf_counter() - t0, f"client {index}: {detail}")

    def refused(self, client, kind: str, photo: Path, bad_photo: Path) -> tuple[bool, str]:
        """A bad call must be refused with its own message (and nothing else)."""
        from gradio_client import handle_file

        expected = {"bad_type": "remove_background must be true or false",
                    "bad_range": "foreground_ratio must be a number from 0.3 to 1",
                    "bad_photo": "not an image",
                    "bad_server_path": "uploaded to this server"}[kind]
        try:
            if kind == "bad_type":
                client.predict(handle_file(str(photo)), remove_background="false",
                               api_name="/reconstruct")
            elif kind == "bad_range":
                client.predict(handle_file(str(photo)), foreground_ratio=0.1,
                               api_name="/reconstruct")
            elif kind == "bad_photo":
                client.predict(handle_file(str(bad_photo)), api_name="/reconstruct")
            else:  # a server path, sent over plain HTTP (the client would upload it)
                import httpx

                body = {"data": [{"path": str(ROOT / "app.py"),
                                  "meta": {"_type": "gradio.FileData"}}, 0, 0.85, True, 50,
                                 2.5]}
                r = httpx.post(self.url + "gradio_api/call/reconstruct", json=body, timeout=60)
                text = r.text
                return (r.status_code == 422 and expected in text and str(ROOT) not in text,
                        f"HTTP {r.status_code}: {text[:200]}")
        except Exception as err:  # noqa: BLE001 - the refusal
            text = str(err)
            return expected in text and "/tmp/" not in text, text[:200]
        return False, "accepted"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "app_soak.json"))
    args = ap.parse_args()

    from gradio_client import Client, handle_file

    from humansplat.webapp.process import AppProcess

    tmp = Path(tempfile.mkdtemp(prefix="humansplat-soak-"))
    ckpt, ckpt_name = checkpoint(args, tmp)
    env = {"HUMANSPLAT_CHECKPOINT": ckpt, "HF_HUB_OFFLINE": "1", "GRADIO_HEARTBEAT_INTERVAL": "1",
           "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE"}
    server = AppProcess.start(ROOT / "app.py", tmp / "server", env)
    pid = server.proc.pid
    print(f"app.py served in {server.startup_s:.1f} s (checkpoint: {ckpt_name})")
    rss_start = rss_mb(pid)
    checker = Checker(tmp, server.url)
    clients = [Client(server.url, verbose=False, download_files=str(tmp / f"dl{i}"))
               for i in range(args.clients)]
    imgs = photos(tmp, args.clients)
    peak = [rss_start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        # the first run, alone: the memory reference
        t0 = time.perf_counter()
        out = clients[0].predict(handle_file(str(imgs[0])), seed=0, api_name="/reconstruct")
        checker.record("good", Path(out[0]).is_file(), time.perf_counter() - t0, "first run")
        rss_first = rss_mb(pid)
        plans = make_plan(args.calls, args.clients)
        threads = [threading.Thread(target=checker.run_client, args=(i, plans[i], clients[i],
                                                                     imgs[i]))
                   for i in range(args.clients)]
        t_soak = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        soak_s = time.perf_counter() - t_soak
        time.sleep(2.0)
        rss_end = rss_mb(pid)
    finally:
        stop.set()
        for c in clients:
            c.close()
    time.sleep(5.0)  # sessions end about a second after their clients close
    rss_closed = rss_mb(pid)
    left = sorted(p.name for p in (server.temp_dir / "humansplat-sessions").iterdir())
    alive = server.alive()
    server.stop()

    total = sum(checker.counts.values())
    change = (rss_end - rss_first) / rss_first
    print(f"\n{total} calls from {args.clients} clients in {soak_s:.1f} s "
          f"(+ the first run alone); wrong answers: {len(checker.failures)}")
    print(f"{'kind':<16} {'calls':>5} {'median s':>9}")
    for kind in sorted(checker.counts):
        secs = sorted(checker.seconds[kind])
        print(f"{kind:<16} {checker.counts[kind]:>5} {secs[len(secs) // 2]:>9.2f}")
    print(f"server RSS: start {rss_start:.0f} MB, after the first run {rss_first:.0f} MB, after "
          f"the soak {rss_end:.0f} MB ({100 * change:+.1f} %), peak {peak[0]:.0f} MB, after "
          f"the clients closed {rss_closed:.0f} MB")
    for f in checker.failures:
        print("WRONG:", f)
    result = {
        "machine": machine_info("cpu", server_torch_threads=args.threads),
        "checkpoint": ckpt_name, "calls": total, "clients": args.clients,
        "calls_by_kind": checker.counts, "wrong_answers": checker.failures,
        "median_seconds_by_kind": {k: sorted(v)[len(v) // 2]
                                   for k, v in checker.seconds.items()},
        "soak_seconds": soak_s, "rss_mb": {"start": rss_start, "after_first_run": rss_first,
                                           "after_soak": rss_end, "peak": peak[0],
                                           "after_clients_closed": rss_closed},
        "rss_change_after_first_run": change, "target_rss_change": 0.20,
        "session_folders_left_after_close": len(left), "server_alive": alive,
    }
    write_result(result, args.out)
    if checker.failures or abs(change) > 0.20 or not alive:
        sys.exit(1)


if __name__ == "__main__":
    main()
