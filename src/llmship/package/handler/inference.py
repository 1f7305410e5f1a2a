"""SageMaker inference handler written by llmship into code/inference.py.

Self-contained: it imports only torch, transformers and the standard library, so it
runs in the stock Hugging Face PyTorch inference container (transformers 4.48 to 5.x)
without installing llmship. It formats each request exactly as training did, from
llmship.json beside the weights.

Request (Hugging Face toolkit payload), Content-Type application/json:
    {"inputs": "<text>" | ["<text>", ...], "parameters": {"max_new_tokens": 64, ...}}
Response, Accept application/json:
    [{"generated_text": "<completion>"}, ...]
Parameters: max_new_tokens, do_sample, temperature, top_p, top_k, repetition_penalty,
num_beams, stop (a string or a list of strings; the text is cut before the first one).

stream_fn (used by `llmship serve` for response streaming; the container ignores it)
yields JSON lines: {"token": {"text": "..."}} per piece, then {"generated_text": "..."}.
"""

import json
import os
import threading

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    TextIteratorStreamer,
)

JSON = "application/json"
PARAMETERS = {
    "max_new_tokens": int,
    "do_sample": bool,
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "repetition_penalty": float,
    "num_beams": int,
}


class RequestError(ValueError):
    """A bad request; `status` is the HTTP status llmship's server answers with."""

    status = 400

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class _Placeholders(dict):
    def __missing__(self, key):
        raise RequestError(f"the prompt template needs field {key!r}; send it in 'inputs'")


def model_fn(model_dir):
    with open(os.path.join(model_dir, "llmship.json"), encoding="utf-8") as handle:
        info = json.load(handle)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    fmt = info["prompt_format"]
    auto = AutoModelForSeq2SeqLM if fmt["kind"] == "seq2seq" else AutoModelForCausalLM
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = auto.from_pretrained(model_dir, torch_dtype="auto").to(device).eval()
    return {
        "model": model,
        "tokenizer": tokenizer,
        "format": fmt,
        "defaults": info.get("generation", {}),
        "device": device,
    }


def input_fn(body, content_type):
    if (content_type or "").split(";")[0].strip() != JSON:
        raise RequestError(f"unsupported content type {content_type!r}; send {JSON}", 415)
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise RequestError('the body must be a JSON object with "inputs"')
    inputs = payload["inputs"]
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise RequestError('"inputs" must be a string or a non-empty list of strings')
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError('"parameters" must be a JSON object')
    return {"inputs": inputs, "parameters": parameters}


def _prompt_ids(text, loaded):
    fmt, tokenizer = loaded["format"], loaded["tokenizer"]
    user = fmt["prompt_template"].format_map(_Placeholders({fmt["input_field"]: text}))
    if not fmt.get("use_chat_template"):
        return tokenizer(user)["input_ids"]
    messages = [{"role": "user", "content": user}]
    if fmt.get("system_prompt"):
        messages.insert(0, {"role": "system", "content": fmt["system_prompt"]})
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(rendered, add_special_tokens=False)["input_ids"]


def _generation_kwargs(defaults, parameters):
    unknown = set(parameters) - set(PARAMETERS) - {"stop"}
    if unknown:
        raise RequestError(f"unknown parameters: {', '.join(sorted(unknown))}")
    merged = {k: v for k, v in defaults.items() if k in PARAMETERS}
    for key, cast in PARAMETERS.items():
        if key in parameters:
            try:
                merged[key] = cast(parameters[key])
            except (TypeError, ValueError):
                raise RequestError(f"parameter {key} must be {cast.__name__}") from None
    if merged.get("max_new_tokens", 1) < 1:
        raise RequestError("max_new_tokens must be at least 1")
    if not merged.get("do_sample"):
        for key in ("temperature", "top_p", "top_k"):
            merged.pop(key, None)
    return merged


def _stops(parameters):
    stop = parameters.get("stop") or []
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


def _cut(text, stops):
    cuts = [text.find(s) for s in stops if s in text]
    return text[: min(cuts)] if cuts else text


def predict_fn(data, loaded):
    tokenizer, device = loaded["tokenizer"], loaded["device"]
    kwargs = _generation_kwargs(loaded["defaults"], data["parameters"])
    stop = _stops(data["parameters"])
    encoded = [_prompt_ids(text, loaded) for text in data["inputs"]]
    causal = loaded["format"]["kind"] == "causal"
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):
        span = slice(width - len(ids), width) if causal else slice(0, len(ids))
        input_ids[row, span] = torch.tensor(ids)
        mask[row, span] = 1
    with torch.no_grad():
        output = loaded["model"].generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            pad_token_id=tokenizer.pad_token_id,
            **kwargs,
        )
    if causal:
        output = output[:, width:]
    texts = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in output]
    return [{"generated_text": _cut(text, stop)} for text in texts]


def stream_fn(data, loaded):
    if len(data["inputs"]) != 1:
        raise RequestError("streaming takes one input at a time")
    tokenizer, device = loaded["tokenizer"], loaded["device"]
    kwargs = _generation_kwargs(loaded["defaults"], data["parameters"])
    stop = _stops(data["parameters"])
    ids = torch.tensor([_prompt_ids(data["inputs"][0], loaded)], device=device)
    streamer = TextIteratorStreamer(
        tokenizer, skip_prompt=loaded["format"]["kind"] == "causal", skip_special_tokens=True
    )
    failure = []

    def run():
        try:
            with torch.no_grad():
                loaded["model"].generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    pad_token_id=tokenizer.pad_token_id,
                    streamer=streamer,
                    **kwargs,
                )
        except Exception as exc:  # reported to the client after the last piece
            failure.append(exc)
            streamer.end()

    threading.Thread(target=run, daemon=True).start()
    text, sent = "", 0
    for piece in streamer:
        text += piece
        visible = _cut(text.lstrip(), stop)
        if len(visible) > sent:
            yield json.dumps({"token": {"text": visible[sent:]}}) + "\n"
            sent = len(visible)
        if len(visible) < len(text.lstrip()):
            break
    if failure:
        raise failure[0]
    yield json.dumps({"generated_text": _cut(text.strip(), stop)}) + "\n"


def output_fn(prediction, accept):
    if accept not in (None, "", "*/*") and accept.split(";")[0].strip() != JSON:
        raise RequestError(f"cannot answer in {accept!r}; ask for {JSON}", 406)
    return json.dumps(prediction)
