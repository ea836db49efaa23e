"""The MLServer peer's runtime: a minimal custom ONNX Runtime runtime (MLServer has none).

Loaded by MLServer 1.7 from ``model-settings.json`` (``"implementation":
"mlserver_onnx.OnnxRuntime"``, ``parameters.uri`` = the .onnx file); runs in bench/.peers/mlserver.
The session uses the same options as veil's (defaults), inputs are decoded with MLServer's numpy
codec, every output is returned.
"""

from __future__ import annotations

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntime(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            self.settings.parameters.uri, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        results = self._session.run(self._outputs, feeds)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output(name, value)
                for name, value in zip(self._outputs, results, strict=True)
            ],
        )
