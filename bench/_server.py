"""Run an InferenceServer for the benchmark: ``python bench/_server.py MODEL_DIR READY_FILE [--tls]``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import sys
from pathlib import Path

from veil.pki import create_root, issue_server_certificate
from veil.serving import InferenceServer, ModelConfig, ServingConfig, TLSMaterial


async def main() -> None:
    model_dir, ready = Path(sys.argv[1]), Path(sys.argv[2])
    tls = None
    if "--tls" in sys.argv:
        now = dt.datetime.now(dt.UTC)
        root = create_root(now)
        leaf = issue_server_certificate(root, common_name="bench", dns_names=["localhost"], now=now)
        (ready.parent / "bench-cert.pem").write_bytes(root.cert_pem)
        tls = TLSMaterial(cert_chain_pem=leaf.cert_pem, private_key_pem=leaf.key_pem())
    server = InferenceServer(
        ServingConfig(
            models=(ModelConfig(name="digits", base_path=str(model_dir)),),
            rest_port=0,
            grpc_port=0,
            tls=tls,
        )
    )
    await server.start()
    ready.write_text(json.dumps({"rest_port": server.rest_port}))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()


asyncio.run(main())
