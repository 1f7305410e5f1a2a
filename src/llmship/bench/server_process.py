"""One benchmark server in a process of its own, so the load generator does not share
its interpreter (as with vLLM's benchmark, client and server run apart).

    python -m llmship.bench.server_process {llmship,naive} MODEL_DIR PORT [MAX_BATCH [off]]

(`off`: llmship without its prefix cache.)
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    from llmship.serve.openmp import prefer_passive_waiting

    prefer_passive_waiting()  # the same for llmship and the baseline
    import torch
    import uvicorn

    kind, model_dir, port = argv[0], Path(argv[1]), int(argv[2])
    if kind == "llmship":
        from llmship.config.serving import ServeConfig
        from llmship.serve.app import create_app
        from llmship.serve.limits import EndpointLimits

        limits = EndpointLimits("benchmark", 1 << 30, 3600.0)
        settings = ServeConfig(prefix_cache=argv[4:5] != ["off"])
        app = create_app(model_dir, "bench", limits, settings, max_batch=int(argv[3]))
    else:
        from llmship.bench.naive import naive_app

        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        app = naive_app(model_dir, device, dtype)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
