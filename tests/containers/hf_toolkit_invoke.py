"""Run inside an environment pinned like the Hugging Face PyTorch inference container
(transformers 4.51.3, sagemaker-huggingface-inference-toolkit 2.6.0, multi-model-server):
answer requests through the toolkit's own handler service, in-process, exactly as
`llmship serve --emulate hf-pytorch` does, and report the model config as loaded.

Usage: python hf_toolkit_invoke.py MODEL_DIR REQUESTS_JSON
REQUESTS_JSON holds a list of {"body": str, "content_type": str, "accept": str}.
Prints one JSON object: the transformers version, the model config as loaded, and per
request {"status", "content_type", "body"}.
"""

import json
import sys
from pathlib import Path

import transformers
from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService

EMULATOR = Path(__file__).resolve().parents[2] / "src" / "llmship" / "serve"
sys.path.insert(0, str(EMULATOR))
from hf_pytorch_emulator import handle_request  # noqa: E402


def main(model_dir, requests_path):
    with open(requests_path, encoding="utf-8") as handle:
        requests = json.load(handle)
    service = HuggingFaceHandlerService()
    results = []
    for request in requests:
        status, content_type, body = handle_request(
            service,
            model_dir,
            request["body"].encode("utf-8"),
            request["content_type"],
            request["accept"],
        )
        results.append(
            {"status": status, "content_type": content_type, "body": body.decode("utf-8")}
        )
    config = service.model["model"].config.to_dict() if service.model else None
    print(
        json.dumps(
            {"transformers": transformers.__version__, "config": config, "results": results},
            default=str,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
