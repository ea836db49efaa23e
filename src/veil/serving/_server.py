"""The confidential inference server: REST (uvicorn) and gRPC (grpc.aio) over one repository."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator, Mapping

import grpc
import uvicorn

from veil._net import HeaderTimeoutH11Protocol
from veil.errors import ConfigurationError, NotFoundError, StateError
from veil.serving._app import rest_app
from veil.serving._config import ModelConfig, ServingConfig
from veil.serving._dataplane import DataPlane
from veil.serving._grpc import add_services, server_options
from veil.serving._repository import ModelRepository
from veil.serving._tls import grpc_credentials, rest_ssl_context

__all__ = ["InferenceServer"]

_log = logging.getLogger(__name__)


class _RestServer(uvicorn.Server):
    """uvicorn without its signal handlers: the InferenceServer owns the process lifecycle."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class InferenceServer:
    """TF Serving-compatible REST + gRPC inference over ONNX models, with encrypted model loading.

    ``start()`` loads plaintext models and binds both listeners; encrypted models are served
    after ``set_model_key()`` has decrypted them into memory. Run it on one event loop;
    ``set_model_key()`` and ``model_states()`` may be called from any thread.
    """

    def __init__(self, config: ServingConfig) -> None:
        """Prepare the server; nothing is read or bound before :meth:`start`."""
        self._config = config
        self._repository = ModelRepository(config.models)
        self._dataplane = DataPlane(self._repository)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early_keys: list[tuple[str | None, bytes]] = []
        self._keys_lock = threading.Lock()  # set_model_key may race with the end of start()
        self._key_tasks: set[asyncio.Task[None]] = set()
        self._rest: _RestServer | None = None
        self._rest_task: asyncio.Task[None] | None = None
        self._grpc: grpc.aio.Server | None = None
        self._ports = (0, 0)
        self._stop_requested: asyncio.Event | None = None
        self._stopped = False
        self._poll_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load plaintext models and bind the REST and gRPC listeners (port 0 = any free port)."""
        if self._loop is not None:
            raise StateError("The server was already started; create a new InferenceServer.")
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        try:
            await self._repository.load_all()
            rest_port = await self._start_rest()
            grpc_port = await self._start_grpc()
        except BaseException:
            await self.stop()
            raise
        with self._keys_lock:
            self._ports = (rest_port, grpc_port)
            early, self._early_keys = self._early_keys, []
        _log.info("serving", extra={"rest_port": rest_port, "grpc_port": grpc_port})
        if self._config.file_system_poll_wait_s > 0:
            self._poll_task = asyncio.create_task(
                self._poll_forever(self._config.file_system_poll_wait_s)
            )
        for model in self._config.models:
            if model.batching is not None:
                from veil.serving._batching import Batcher

                self._dataplane.batchers[model.name] = Batcher(model.batching)
        for name, key in early:
            self._apply_key(name, key)

    @property
    def rest_port(self) -> int:
        """The bound REST port."""
        return self._require_started()[0]

    @property
    def grpc_port(self) -> int:
        """The bound gRPC port."""
        return self._require_started()[1]

    def set_model_key(self, model_name: str | None, key: bytes) -> None:
        """Give the key of one encrypted model (or, with None, of every encrypted model).

        Decryption and loading run in a worker thread. A wrong key or modified file leaves the
        version in an error state (see the status APIs); calling again with the right key retries.
        Thread-safe; before :meth:`start` the key is kept until the models are found.
        """
        if model_name is not None and model_name not in self._repository.names():
            raise NotFoundError(f"No model named {model_name!r} is configured; check the name.")
        if self._stopped:
            raise StateError("The server is stopped; keys can no longer be set.")
        with self._keys_lock:
            if self._loop is None or self._ports == (0, 0):
                self._early_keys.append((model_name, key))
                return
            self._loop.call_soon_threadsafe(self._apply_key, model_name, key)

    async def reload_models(self, models: tuple[ModelConfig, ...]) -> None:
        """Replace the served model list (as TF Serving's HandleReloadConfigRequest does)."""
        await self._repository.reconfigure(models)

    async def poll_models(self) -> None:
        """Scan the base paths now for new or removed versions, and wait for the loads."""
        await self._repository.poll(wait=True)

    async def wait_loaded(self, model_name: str, timeout: float) -> None:  # noqa: ASYNC109 - public API
        """Wait until ``model_name`` is being served; StateError on a load error or timeout."""
        await self._repository.wait_loaded(model_name, timeout)

    def model_states(self) -> Mapping[str, str]:
        """Model name → AVAILABLE, LOADING, WAITING_FOR_KEY, ERROR or NO_VERSION."""
        return self._repository.summary()

    async def stop(self) -> None:
        """Stop both listeners (in-flight requests get a few seconds) and pending loads."""
        self._stopped = True
        if self._poll_task is not None:
            self._poll_task.cancel()
        if self._rest is not None and self._rest_task is not None:
            self._rest.should_exit = True
            with contextlib.suppress(Exception):
                await self._rest_task
        if self._grpc is not None:
            await self._grpc.stop(grace=2)
        for task in list(self._key_tasks):
            task.cancel()
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until :meth:`stop`, SIGINT or SIGTERM; then stop."""
        if self._loop is None:
            await self.start()
        assert self._stop_requested is not None  # noqa: S101 - set by start()
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self._stop_requested.set)
                handled.append(signum)
        try:
            await self._stop_requested.wait()
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
            await self.stop()

    async def _start_rest(self) -> int:
        config = self._config
        app = rest_app(
            self._dataplane,
            max_request_bytes=config.max_request_bytes,
            cors=config.cors,
            metrics=config.metrics,
        )
        uv_config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            http=HeaderTimeoutH11Protocol,
            ws="none",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=5,
        )
        uv_config.load()
        if config.tls is not None:
            uv_config.ssl = rest_ssl_context(config.tls)
        sock = _listen(config.host, config.rest_port)
        self._rest = _RestServer(uv_config)
        self._rest_task = asyncio.create_task(self._rest.serve(sockets=[sock]))
        self._rest_task.add_done_callback(self._rest_ended)
        while not self._rest.started:
            if self._rest_task.done():
                self._rest_task.result()
                raise StateError("The REST listener stopped during start-up.")
            await asyncio.sleep(0.005)
        port: int = sock.getsockname()[1]
        return port

    async def _start_grpc(self) -> int:
        config = self._config
        self._grpc = grpc.aio.server(options=server_options())
        add_services(self._grpc, self._dataplane)
        host = f"[{config.host}]" if ":" in config.host else config.host
        address = f"{host}:{config.grpc_port}"
        try:
            if config.tls is not None:
                port = self._grpc.add_secure_port(address, grpc_credentials(config.tls))
            else:
                port = self._grpc.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigurationError(f"Cannot listen for gRPC on {address}: {exc}.") from None
        await self._grpc.start()
        return int(port)

    def _rest_ended(self, task: asyncio.Task[None]) -> None:
        if not self._stopped and self._stop_requested is not None:
            _log.error("REST listener stopped unexpectedly; stopping the server")
            self._stop_requested.set()

    def _apply_key(self, model_name: str | None, key: bytes) -> None:
        waiting = self._repository.encrypted_waiting(model_name)
        names = [model_name] if model_name is not None else self._repository.names()
        for name in names:
            if model_name is not None or self._repository.has_encrypted(name):
                self._repository.remember_key(name, key)
        if not waiting:
            _log.warning("key not used: no encrypted model is waiting", extra={"model": model_name})
        for name, number in waiting:
            task = asyncio.create_task(self._repository.load_encrypted(name, number, key))
            self._key_tasks.add(task)
            task.add_done_callback(self._key_tasks.discard)

    async def _poll_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self._repository.poll()
            except Exception:  # noqa: BLE001 - one failed scan must not stop polling
                _log.exception("polling the model base paths failed")

    def _require_started(self) -> tuple[int, int]:
        if self._ports == (0, 0):
            raise StateError("The server is not started; call start() first.")
        return self._ports


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket; proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"Cannot listen for REST on {host}:{port}: {exc.strerror}."
        ) from None
    return sock
