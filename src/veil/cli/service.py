"""Inference service command: ``veil serve`` (TF Serving's flags accepted as aliases)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import click

from veil._logging import configure_service_logging
from veil.cli._common import handle_errors, marble_options, marble_settings, read_file
from veil.runtime import run_marble_server, run_plain_server
from veil.serving import (
    BatchingConfig,
    ModelConfig,
    ServingConfig,
    parse_model_config,
    parse_ssl_config,
)


@click.command("serve")
@click.option(
    "--model_name",
    "--model-name",
    "model_name",
    envvar="VEIL_MODEL_NAME",
    default="model",
    show_default=True,
)
@click.option(
    "--model_base_path",
    "--model-base-path",
    "model_base_path",
    envvar="VEIL_MODEL_BASE_PATH",
    help="Base path of the one model (ignored with --model_config_file).",
)
@click.option(
    "--model_config_file",
    "--model-config-file",
    "model_config_file",
    envvar="VEIL_MODEL_CONFIG_FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TF Serving ModelServerConfig in text format (model_config_list).",
)
@click.option(
    "--file_system_poll_wait_seconds",
    "--file-system-poll-wait-seconds",
    "poll_seconds",
    envvar="VEIL_FILE_SYSTEM_POLL_WAIT_SECONDS",
    type=float,
    default=1.0,
    show_default=True,
    help="Poll the base paths for new versions this often (0 = never).",
)
@click.option(
    "--ssl_config_file",
    "--ssl-config-file",
    "ssl_config_file",
    envvar="VEIL_SSL_CONFIG_FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TF Serving SSLConfig (PEM contents) for both listeners; not with --coordinator.",
)
@click.option(
    "--rest_api_enable_cors_support",
    "--rest-api-enable-cors-support",
    "cors",
    envvar="VEIL_REST_API_ENABLE_CORS_SUPPORT",
    is_flag=True,
    help="Answer CORS preflights and add CORS headers (TF Serving's flag).",
)
@click.option(
    "--max_batch_size",
    "--max-batch-size",
    "max_batch_size",
    envvar="VEIL_MAX_BATCH_SIZE",
    type=int,
    default=0,
    help="Adaptive batching: rows per batch (0 = batching off).",
)
@click.option(
    "--batch_timeout_micros",
    "--batch-timeout-micros",
    "batch_timeout_micros",
    envvar="VEIL_BATCH_TIMEOUT_MICROS",
    type=int,
    default=2000,
    show_default=True,
    help="Adaptive batching: longest wait for a batch to fill.",
)
@click.option(
    "--rest_api_num_threads",
    "--rest_api_timeout_in_ms",
    "--grpc_max_threads",
    "--num_load_threads",
    "--num_unload_threads",
    "--enable_model_warmup",
    "--tensorflow_intra_op_parallelism",
    "--tensorflow_inter_op_parallelism",
    "--model_config_file_poll_wait_seconds",
    "ignored_tf_flags",
    multiple=True,
    hidden=True,
    help="TF Serving tuning flags: accepted for compatibility and ignored.",
)
@click.option(
    "--port",
    "grpc_port",
    envvar="VEIL_GRPC_PORT",
    type=int,
    default=8500,
    show_default=True,
    help="gRPC port.",
)
@click.option(
    "--rest_api_port",
    "--rest-api-port",
    "rest_port",
    envvar="VEIL_REST_PORT",
    type=int,
    default=8501,
    show_default=True,
)
@click.option("--host", envvar="VEIL_HOST", default="127.0.0.1", show_default=True)
@marble_options(required=False)
@click.option(
    "--require-client-cert", is_flag=True, help="Require marble client certificates (mTLS)."
)
@click.option(
    "--ready-file", envvar="VEIL_READY_FILE", type=click.Path(dir_okay=False, path_type=Path)
)
@handle_errors
def serve(
    model_name: str,
    model_base_path: str | None,
    model_config_file: Path | None,
    poll_seconds: float,
    ssl_config_file: Path | None,
    cors: bool,
    max_batch_size: int,
    batch_timeout_micros: int,
    ignored_tf_flags: tuple[str, ...],
    grpc_port: int,
    rest_port: int,
    host: str,
    coordinator: str | None,
    marble_type: str | None,
    coordinator_cert: Path | None,
    uuid_file: Path,
    tee: str | None,
    device_root: Path | None,
    simulated_platform: Path | None,
    measured_files: tuple[Path, ...],
    require_client_cert: bool,
    ready_file: Path | None,
) -> None:
    """Serve models over TF Serving REST/gRPC and KServe v2; as a marble with --coordinator."""
    configure_service_logging()
    batching = (
        BatchingConfig(max_batch_size=max_batch_size, max_wait_s=batch_timeout_micros / 1e6)
        if max_batch_size > 0
        else None
    )
    if model_config_file is not None:
        models = parse_model_config(
            read_file(model_config_file, "model config file").decode(),
            source=str(model_config_file),
        )
    elif model_base_path is not None:
        models = (ModelConfig(name=model_name, base_path=model_base_path),)
    else:
        raise click.UsageError("give --model_base_path or --model_config_file")
    models = tuple(dataclasses.replace(m, batching=batching) for m in models)
    tls = None
    if ssl_config_file is not None:
        if coordinator is not None:
            raise click.UsageError("--ssl_config_file cannot be used with --coordinator")
        tls = parse_ssl_config(
            read_file(ssl_config_file, "SSL config file").decode(), source=str(ssl_config_file)
        )
    serving = ServingConfig(
        models=models,
        host=host,
        rest_port=rest_port,
        grpc_port=grpc_port,
        tls=tls,
        file_system_poll_wait_s=poll_seconds,
        cors=cors,
    )
    if coordinator is None:
        message = (
            "WARNING: running WITHOUT a coordinator: nothing is confidential. There is no "
            "attestation, models and requests are not protected by a TEE, and clients cannot "
            "verify this server. Use --coordinator ADDR --marble-type NAME for a confidential "
            "deployment."
        )
        click.secho(message, err=True, fg="red", bold=True)
        logging.getLogger(__name__).warning(message, extra={"event": "serve.not_confidential"})
        asyncio.run(run_plain_server(serving, ready_file=ready_file))
        return
    if marble_type is None or tee is None:
        raise click.UsageError("--coordinator needs --marble-type and --tee")
    marble = marble_settings(
        coordinator=coordinator,
        marble_type=marble_type,
        coordinator_cert=coordinator_cert,
        uuid_file=uuid_file,
        tee=tee,
        device_root=device_root,
        simulated_platform=simulated_platform,
        measured_files=measured_files,
        entry_point="serve",
    )
    asyncio.run(
        run_marble_server(
            marble, serving, ready_file=ready_file, require_client_cert=require_client_cert
        )
    )


def register(cli: click.Group) -> None:
    """Attach the service command."""
    cli.add_command(serve)
