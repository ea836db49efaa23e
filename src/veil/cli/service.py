"""Inference service command: ``veil serve`` (TF Serving's flags accepted as aliases)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from veil._logging import configure_service_logging
from veil.cli._common import handle_errors, read_file
from veil.runtime import MarbleSettings, run_marble_server, run_plain_server
from veil.serving import ModelConfig, ServingConfig


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
    required=True,
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
@click.option(
    "--coordinator",
    envvar="VEIL_MARBLE_COORDINATOR_ADDR",
    help="Coordinator mesh address; activate as a marble.",
)
@click.option("--marble-type", envvar="VEIL_MARBLE_TYPE")
@click.option(
    "--coordinator-cert",
    envvar="VEIL_MARBLE_COORDINATOR_CERT",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Coordinator root; without it the coordinator is NOT authenticated.",
)
@click.option(
    "--uuid-file",
    envvar="VEIL_MARBLE_UUID_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("uuid"),
    show_default=True,
)
@click.option("--tee", envvar="VEIL_TEE", type=click.Choice(["simulated"]), default=None)
@click.option(
    "--simulated-platform",
    envvar="VEIL_SIMULATED_PLATFORM",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--measure-extra-file",
    "measured_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Extra files measured into the simulated UniqueID.",
)
@click.option(
    "--require-client-cert", is_flag=True, help="Require marble client certificates (mTLS)."
)
@click.option(
    "--ready-file", envvar="VEIL_READY_FILE", type=click.Path(dir_okay=False, path_type=Path)
)
@handle_errors
def serve(
    model_name: str,
    model_base_path: str,
    grpc_port: int,
    rest_port: int,
    host: str,
    coordinator: str | None,
    marble_type: str | None,
    coordinator_cert: Path | None,
    uuid_file: Path,
    tee: str | None,
    simulated_platform: Path | None,
    measured_files: tuple[Path, ...],
    require_client_cert: bool,
    ready_file: Path | None,
) -> None:
    """Serve models over TF Serving REST/gRPC and KServe v2; as a marble with --coordinator."""
    configure_service_logging()
    serving = ServingConfig(
        models=(ModelConfig(name=model_name, base_path=model_base_path),),
        host=host,
        rest_port=rest_port,
        grpc_port=grpc_port,
    )
    if coordinator is None:
        asyncio.run(run_plain_server(serving, ready_file=ready_file))
        return
    if marble_type is None or tee is None:
        raise click.UsageError("--coordinator needs --marble-type and --tee")
    marble = MarbleSettings(
        coordinator_addr=coordinator,
        marble_type=marble_type,
        uuid_file=uuid_file,
        coordinator_root_pem=read_file(coordinator_cert, "coordinator certificate")
        if coordinator_cert
        else None,
        simulated_platform=simulated_platform,
        measured_files=measured_files,
    )
    asyncio.run(
        run_marble_server(
            marble, serving, ready_file=ready_file, require_client_cert=require_client_cert
        )
    )


def register(cli: click.Group) -> None:
    """Attach the service command."""
    cli.add_command(serve)
