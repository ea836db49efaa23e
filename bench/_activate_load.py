"""N marbles activating at once: ``python _activate_load.py CONFIG_JSON`` (run pinned).

Each marble is ``veil.runtime.activate()`` in its own thread (fresh key, CSR, simulated
evidence, TLS connection to the coordinator's mesh API), all released by one barrier.
Prints one JSON line: wall seconds and each activation's latency.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from veil.runtime import MarbleSettings, activate


def main(cfg: dict[str, object]) -> dict[str, object]:
    n = int(str(cfg["n"]))
    uuid_dir = Path(str(cfg["uuid_dir"]))
    uuid_dir.mkdir(parents=True, exist_ok=True)
    root = Path(str(cfg["root_pem"])).read_bytes()
    settings = [
        MarbleSettings(
            coordinator_addr=str(cfg["mesh_addr"]),
            marble_type=str(cfg["marble_type"]),
            uuid_file=uuid_dir / f"m{i}.uuid",
            coordinator_root_pem=root,
            simulated_platform=Path(str(cfg["platform_dir"])),
        )
        for i in range(n)
    ]
    barrier = threading.Barrier(n + 1)
    latencies: list[float] = [0.0] * n

    def one(i: int) -> None:
        barrier.wait()
        t = time.perf_counter()
        activate(settings[i])
        latencies[i] = time.perf_counter() - t

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(one, i) for i in range(n)]
        barrier.wait()
        start = time.perf_counter()
        cpu = time.process_time()
        for f in futures:
            f.result()
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return {"n": n, "wall_s": wall, "client_cpu_s": cpu, "latencies_s": latencies}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
