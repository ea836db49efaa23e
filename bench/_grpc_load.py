"""gRPC load generator (grpc.aio, closed loop): ``python _grpc_load.py CONFIG_JSON``.

The request is pre-serialised (bytes in, bytes out: no protobuf work in the loop), so the
client spends its one core on gRPC itself. Prints one JSON line: requests, seconds, latency
percentiles in microseconds and errors. Run pinned to the load generator's core.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import grpc


def _identity(data: bytes) -> bytes:
    return data


async def main(cfg: dict[str, object]) -> dict[str, object]:
    body = Path(str(cfg["request_file"])).read_bytes()
    options = [
        ("grpc.max_send_message_length", 1 << 30),
        ("grpc.max_receive_message_length", 1 << 30),
    ]
    target = str(cfg["target"])
    if cfg.get("root_pem"):
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(str(cfg["root_pem"])).read_bytes()
        )
        options.append(("grpc.ssl_target_name_override", "localhost"))
        channel = grpc.aio.secure_channel(target, creds, options=options)
    else:
        channel = grpc.aio.insecure_channel(target, options=options)
    call = channel.unary_unary(
        str(cfg["method"]), request_serializer=_identity, response_deserializer=_identity
    )
    concurrency = int(str(cfg["concurrency"]))
    latencies: list[float] = []
    errors: list[str] = []
    state = {"measuring": False, "stop": False}

    async def worker() -> None:
        while not state["stop"]:
            t = time.perf_counter()
            try:
                await call(body, timeout=120)
            except grpc.aio.AioRpcError as exc:
                if len(errors) < 5:
                    errors.append(f"{exc.code().name}: {exc.details()}")
                else:
                    errors.append("")
                continue
            if state["measuring"]:
                latencies.append(time.perf_counter() - t)

    await channel.channel_ready()
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(float(str(cfg["warmup"])))
    errors.clear()
    state["measuring"] = True
    start = time.perf_counter()
    cpu = time.process_time()
    await asyncio.sleep(float(str(cfg["duration"])))
    state["measuring"] = False
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    count = len(latencies)
    state["stop"] = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await channel.close()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(count - 1, int(p * count))] * 1e6 if count else float("nan")

    return {
        "requests": count,
        "seconds": elapsed,
        "req_s": count / elapsed,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "errors": len(errors),
        "client_cpu": cpu / elapsed,
        "error_samples": [e for e in errors if e][:3],
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
