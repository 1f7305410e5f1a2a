"""Serve an artifact exactly as the AWS Hugging Face PyTorch inference container does.

Runs under a separate interpreter whose libraries are pinned like the container's
(transformers 4.51.3, sagemaker-huggingface-inference-toolkit 2.6.0,
multi-model-server): the toolkit's own HuggingFaceHandlerService loads the model and
answers every request, one at a time, with the status codes and error bodies
multi-model-server sends. It imports nothing from llmship.

    python hf_pytorch_emulator.py MODEL_DIR PORT [HOST]
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from mms.context import Context, RequestProcessor
from mms.metrics.metrics_store import MetricsStore
from mms.service import PredictionException
from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService

MMS_VERSION = "1.1.11"


def handle_request(service, model_dir, body, content_type, accept):
    """One request through the toolkit: (status, content_type, body bytes)."""
    context = Context("model", model_dir, {}, 1, None, MMS_VERSION)
    context.metrics = MetricsStore({0: "request"}, "model")
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    context.request_processor = [RequestProcessor(headers)]
    # The toolkit's handle() turns every Exception (MemoryError included) into a
    # PredictionException with code 400, so multi-model-server's 507 and 503 answers for
    # other failures never happen behind it.
    try:
        [response] = service.handle([{"body": body}], context)
    except PredictionException as exc:
        error = {"code": exc.error_code, "type": "InternalServerException", "message": exc.message}
        return exc.error_code, "application/json", (json.dumps(error, indent=2) + "\n").encode()
    if isinstance(response, str):
        response = response.encode("utf-8")
    elif not isinstance(response, bytes | bytearray):
        response = json.dumps(response, indent=2).encode("utf-8")
    return 200, context.get_response_content_type(0), bytes(response)


def main(model_dir, port, host="127.0.0.1"):
    service = HuggingFaceHandlerService()
    context = Context("model", model_dir, {}, 1, None, MMS_VERSION)
    try:
        service.initialize(context)
        status = "Healthy"
    except Exception as exc:
        print(f"model failed to load: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        status = "Unhealthy"

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code, content_type, body):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != "/ping":
                return self._send(404, "application/json", b'{"code": 404}')
            # multi-model-server answers /ping with 200 and a status word.
            return self._send(200, "application/json", json.dumps({"status": status}).encode())

        def do_POST(self):
            if self.path.split("?")[0] != "/invocations":
                return self._send(404, "application/json", b'{"code": 404}')
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            code, content_type, payload = handle_request(
                service,
                model_dir,
                body,
                self.headers.get("Content-Type", ""),
                self.headers.get("Accept"),
            )
            return self._send(code, content_type, payload)

        def log_message(self, fmt, *args):
            print(fmt % args, file=sys.stderr, flush=True)

    server = HTTPServer((host, int(port)), Handler)  # one request at a time, as one worker
    print(f"hf-pytorch emulation serving {model_dir} on http://{host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
