"""Write a serialised v2 ``ModelInferRequest`` (fp32_contents) for MLServer's gRPC API.

Runs in the MLServer venv: ``python mlserver_request.py MODEL INPUT_NAME INPUT.npy OUT.bin``.
"""

import sys
from pathlib import Path

import numpy as np
from mlserver.grpc import dataplane_pb2 as pb

model, input_name, npy, out = sys.argv[1:5]
x = np.load(npy).astype(np.float32)
req = pb.ModelInferRequest(model_name=model)
tensor = req.inputs.add(name=input_name, datatype="FP32", shape=list(x.shape))
tensor.contents.fp32_contents.extend(x.ravel().tolist())
Path(out).write_bytes(req.SerializeToString())
