"""The baseline users run today: one transformers generate() per request, no batching,
behind the same streaming /v1/completions route the benchmark calls."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def naive_app(model_dir: Path, device: str, dtype) -> FastAPI:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    app = FastAPI()

    @app.get("/ping")
    async def ping():
        return JSONResponse({"status": "healthy"})

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        ids = torch.tensor([body["prompt"]], device=device)
        length = int(body["max_tokens"])
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)

        def generate():
            with torch.inference_mode():
                model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=length,
                    min_new_tokens=length if body.get("ignore_eos") else 0,
                    do_sample=False,
                    streamer=streamer,
                    pad_token_id=tokenizer.pad_token_id,
                )

        threading.Thread(target=generate, daemon=True).start()

        async def events():
            loop = asyncio.get_running_loop()
            pieces = iter(streamer)
            while (piece := await loop.run_in_executor(None, next, pieces, None)) is not None:
                if piece:
                    yield f"data: {json.dumps({'choices': [{'index': 0, 'text': piece}]})}\n\n"
            usage = {
                "prompt_tokens": ids.shape[1],
                "completion_tokens": length,
                "total_tokens": ids.shape[1] + length,
            }
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app
