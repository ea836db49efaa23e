"""Marble runtime: activation against the coordinator and launching the inference server."""

from veil.runtime._activation import (
    Activation,
    MarbleSettings,
    activate,
    fetch_parameters,
    wait_for_parameters,
)
from veil.runtime._launcher import Launch, exec_launch, launch, place_parameters
from veil.runtime._serve import model_key_from_parameters, run_marble_server, run_plain_server

__all__ = [
    "Activation",
    "Launch",
    "MarbleSettings",
    "activate",
    "exec_launch",
    "fetch_parameters",
    "launch",
    "model_key_from_parameters",
    "place_parameters",
    "run_marble_server",
    "run_plain_server",
    "wait_for_parameters",
]
