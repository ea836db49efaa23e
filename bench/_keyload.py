"""Key to first prediction, in one server process (no coordinator in the path).

``python _keyload.py BASE_PATH MODEL_NAME KEY_FILE BODY_FILE``: start an InferenceServer whose
model is encrypted and waiting for its key, then time ``set_model_key`` → model AVAILABLE →
first successful REST predict (``/v2/models/<name>/infer``). Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path

import httpx

from veil.serving import InferenceServer, ModelConfig, ServingConfig


async def main() -> None:
    base, name, key_file, body_file = sys.argv[1:5]
    key = Path(key_file).read_bytes()
    body = Path(body_file).read_bytes()
    server = InferenceServer(
        ServingConfig(models=(ModelConfig(name=name, base_path=base),), rest_port=0, grpc_port=0)
    )
    await server.start()
    url = f"http://127.0.0.1:{server.rest_port}/v2/models/{name}/infer"
    async with httpx.AsyncClient(timeout=600) as http:
        t0 = time.perf_counter()
        server.set_model_key(name, key)
        await server.wait_loaded(name, timeout=600)
        t1 = time.perf_counter()
        resp = await http.post(url, content=body)
        t2 = time.perf_counter()
    await server.stop()
    if resp.status_code != 200:
        raise SystemExit(f"first prediction failed: HTTP {resp.status_code} {resp.text[:300]}")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: KiB
    print(
        json.dumps(
            {
                "key_to_loaded_s": t1 - t0,
                "first_predict_s": t2 - t1,
                "total_s": t2 - t0,
                "peak_rss_gb": peak_gb,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
