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
"""

import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

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


class _Placeholders(dict):
    def __missing__(self, key):
        raise ValueError(f"the prompt template needs field {key!r}; send it in 'inputs'")


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
    if content_type.split(";")[0].strip() != JSON:
        raise ValueError(f"unsupported content type {content_type!r}; send {JSON}")
    payload = json.loads(body)
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise ValueError('the body must be a JSON object with "inputs"')
    inputs = payload["inputs"]
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise ValueError('"inputs" must be a string or a non-empty list of strings')
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ValueError('"parameters" must be a JSON object')
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
        raise ValueError(f"unknown parameters: {', '.join(sorted(unknown))}")
    merged = {k: v for k, v in defaults.items() if k in PARAMETERS}
    for key, cast in PARAMETERS.items():
        if key in parameters:
            merged[key] = cast(parameters[key])
    if merged.get("max_new_tokens", 1) < 1:
        raise ValueError("max_new_tokens must be at least 1")
    if not merged.get("do_sample"):
        for key in ("temperature", "top_p", "top_k"):
            merged.pop(key, None)
    return merged


def predict_fn(data, loaded):
    tokenizer, device = loaded["tokenizer"], loaded["device"]
    kwargs = _generation_kwargs(loaded["defaults"], data["parameters"])
    stop = data["parameters"].get("stop") or []
    stop = [stop] if isinstance(stop, str) else list(stop)
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
    results = []
    for ids in output:
        text = tokenizer.decode(ids, skip_special_tokens=True).strip()
        cuts = [text.find(s) for s in stop if s and s in text]
        results.append({"generated_text": text[: min(cuts)] if cuts else text})
    return results


def output_fn(prediction, accept):
    if accept not in (None, "", "*/*") and accept.split(";")[0].strip() != JSON:
        raise ValueError(f"unsupported accept type {accept!r}; ask for {JSON}")
    return json.dumps(prediction)
