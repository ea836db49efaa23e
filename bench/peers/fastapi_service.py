"""The hand-written peer: a minimal FastAPI + uvicorn + ONNX Runtime service (KServe v2 JSON).

Runs in its own virtual environment (bench/.peers/fastapi), never imports veil:
``python fastapi_service.py --port P NAME=MODEL.onnx [NAME=MODEL.onnx ...]``.
One uvicorn worker; the ONNX Runtime session uses the same options as veil's (defaults).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def build_app(models: dict[str, Path]) -> FastAPI:
    sessions = {}
    for name, path in models.items():
        options = ort.SessionOptions()
        options.log_severity_level = 3
        sessions[name] = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    app = FastAPI()

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        session = sessions[name]
        doc = orjson.loads(await request.body())
        feeds = {
            t["name"]: np.asarray(t["data"], dtype=DTYPES[t["datatype"]]).reshape(t["shape"])
            for t in doc["inputs"]
        }
        names = [o.name for o in session.get_outputs()]
        results = session.run(names, feeds)
        outputs = [
            {
                "name": n,
                "shape": list(r.shape),
                "datatype": NAMES[r.dtype],
                "data": r.ravel().tolist(),
            }
            for n, r in zip(names, results, strict=True)
        ]
        return Response(
            orjson.dumps({"model_name": name, "outputs": outputs}), media_type="application/json"
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("models", nargs="+")
    args = parser.parse_args()
    models = {m.split("=", 1)[0]: Path(m.split("=", 1)[1]) for m in args.models}
    uvicorn.run(
        build_app(models),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        workers=1,
    )


if __name__ == "__main__":
    main()
