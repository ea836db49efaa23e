"""The confidential inference server: TF Serving-compatible REST and gRPC, plus KServe v2 REST.

Models are ONNX files or TensorFlow SavedModels (``veil[tensorflow]``) under
``<base_path>/<version>/``; encrypted ones (``model.onnx.veil``, ``saved_model.tar.veil``, made with
:mod:`veil.modelcrypto`) are decrypted into memory only, once their key arrives::

    server = InferenceServer(ServingConfig(models=(ModelConfig("mnist", "/models/mnist"),)))
    await server.start()
    server.set_model_key("mnist", key)
    await server.wait_loaded("mnist", timeout=60)
    await server.serve_forever()
"""

from veil.serving._config import (
    BatchingConfig,
    ModelConfig,
    ServingConfig,
    TLSMaterial,
    VersionPolicy,
)
from veil.serving._model_config import parse_model_config, parse_ssl_config
from veil.serving._server import InferenceServer

__all__ = [
    "BatchingConfig",
    "InferenceServer",
    "ModelConfig",
    "ServingConfig",
    "TLSMaterial",
    "VersionPolicy",
    "parse_model_config",
    "parse_ssl_config",
]
