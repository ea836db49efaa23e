"""Run the inference server as a marble: activate, serve over the marble's TLS, install the key."""

from __future__ import annotations

import asyncio
import binascii
import dataclasses
import json
import logging
import signal
from collections.abc import Mapping
from pathlib import Path

from veil.errors import ConfigurationError
from veil.manifest import RenderedParameters
from veil.runtime._activation import MarbleSettings, activate, wait_for_parameters
from veil.serving import InferenceServer, ServingConfig, TLSMaterial

log = logging.getLogger(__name__)
MODEL_KEY_ENV = "VEIL_MODEL_KEY"


def _write_ready(path: Path, doc: Mapping[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def model_key_from_parameters(params: RenderedParameters) -> bytes | None:
    """The model key the manifest gives this marble: Env ``VEIL_MODEL_KEY`` (hex or raw bytes)."""
    value = params.env.get(MODEL_KEY_ENV)
    if value is None:
        return None
    if len(value) == 32:
        return bytes(value)
    try:
        key = bytes.fromhex(value.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError, binascii.Error):
        raise ConfigurationError(f"{MODEL_KEY_ENV} must be a 32-byte key or its hex") from None
    if len(key) != 32:
        raise ConfigurationError(f"{MODEL_KEY_ENV} must be a 32-byte key or its hex")
    return key


async def run_marble_server(
    marble: MarbleSettings,
    serving: ServingConfig,
    *,
    ready_file: Path | None = None,
    require_client_cert: bool = False,
) -> None:
    """Activate, serve REST and gRPC over TLS with the marble certificate, wait for the key."""
    activation = await asyncio.to_thread(activate, marble)
    tls = TLSMaterial(
        cert_chain_pem=activation.certificate_chain_pem,
        private_key_pem=activation.private_key_pem,
        client_ca_pem=activation.marble_root_pem if require_client_cert else None,
    )
    server = InferenceServer(dataclasses.replace(serving, tls=tls))
    await server.start()
    ready = {"rest_port": server.rest_port, "grpc_port": server.grpc_port, "uuid": activation.uuid}
    log.info("serving", extra={"event": "ready", **ready})
    if ready_file is not None:
        _write_ready(ready_file, ready)

    async def install_key() -> None:
        params = activation.parameters
        if params is None:
            log.info(
                "waiting for user-defined secrets",
                extra={"event": "marble.pending", "secrets": list(activation.pending_secrets)},
            )
            params = await asyncio.to_thread(wait_for_parameters, marble, activation)
        key = model_key_from_parameters(params)
        if key is None:
            log.warning(
                "the manifest gives this marble no %s; encrypted models stay unloaded",
                MODEL_KEY_ENV,
                extra={"event": "model.no_key"},
            )
            return
        server.set_model_key(None, key)
        log.info("model key installed", extra={"event": "model.key_installed"})

    key_task = asyncio.create_task(install_key())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    key_task.cancel()
    await server.stop()


async def run_plain_server(serving: ServingConfig, *, ready_file: Path | None = None) -> None:
    """Serve without a coordinator (a plain model server; encrypted models need a key file)."""
    server = InferenceServer(serving)
    await server.start()
    ready = {"rest_port": server.rest_port, "grpc_port": server.grpc_port}
    if ready_file is not None:
        _write_ready(ready_file, ready)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
