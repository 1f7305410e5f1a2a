"""Run inside an environment pinned like the Hugging Face PyTorch inference container
(transformers 4.51.3, sagemaker-huggingface-inference-toolkit 2.6.0, multi-model-server):
load an artifact through the toolkit's own handler service, in-process, and answer
requests the way the container does.

Usage: python hf_toolkit_invoke.py MODEL_DIR REQUESTS_JSON
REQUESTS_JSON holds a list of {"body": str, "content_type": str, "accept": str}.
Prints one JSON object: the library versions, the model config as loaded, and for each
request either {"body": ..., "content_type": ...} or {"error": ..., "status": ...}.
"""

import json
import sys

import transformers
from mms.context import Context, RequestProcessor
from mms.metrics.metrics_store import MetricsStore
from mms.service import PredictionException
from sagemaker_huggingface_inference_toolkit import handler_service


def main(model_dir, requests_path):
    with open(requests_path, encoding="utf-8") as handle:
        requests = json.load(handle)
    service = handler_service.HuggingFaceHandlerService()
    results = []
    config = None
    for request in requests:
        context = Context("model", model_dir, {}, 1, None, "1.1.11")
        context.metrics = MetricsStore({0: "request"}, "model")
        context.request_processor = [
            RequestProcessor({"Content-Type": request["content_type"], "Accept": request["accept"]})
        ]
        try:
            [body] = service.handle([{"body": request["body"].encode("utf-8")}], context)
            results.append({"body": body, "content_type": context.get_response_content_type(0)})
        except PredictionException as exc:
            results.append({"error": exc.message, "status": exc.error_code})
        if config is None and service.model is not None:
            config = service.model["model"].config.to_dict()
    print(
        json.dumps(
            {"transformers": transformers.__version__, "config": config, "results": results},
            default=str,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
