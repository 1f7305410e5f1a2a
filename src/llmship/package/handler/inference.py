"""SageMaker inference handler written by llmship into code/inference.py.

Self-contained: it imports only torch, transformers and the standard library, so it
runs in the stock Hugging Face PyTorch inference container (transformers 4.48 to 5.x)
without installing llmship. It formats each request exactly as training did, from
llmship.json beside the weights.

Request (Hugging Face toolkit payload), Content-Type application/json:
    {"inputs": "<text>" | ["<text>", ...], "parameters": {"max_new_tokens": 64, ...}}
Response, Accept application/json:
    [{"generated_text": "<completion>"}, ...]
Parameters, with transformers' meaning (as the toolkit and TGI pass them to generate):
max_new_tokens, min_new_tokens (no EOS, and no stop sequence, before that many), do_sample,
temperature, top_p, top_k, typical_p, repetition_penalty, no_repeat_ngram_size, num_beams,
seed; stop (a string or a list of strings; the text is cut before the first one);
return_full_text (false by default, as TGI; true puts the input before the answer); and,
with OpenAI's meaning over the generated tokens, presence_penalty, frequency_penalty and
logit_bias ({"<token id>": bias in [-100, 100]}). Others are refused, naming them.

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
    LogitsProcessor,
    LogitsProcessorList,
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
    "min_new_tokens": int,
    "no_repeat_ngram_size": int,
    "typical_p": float,
    "seed": int,
    "presence_penalty": float,
    "frequency_penalty": float,
    "return_full_text": bool,
}
# Parameters generate does not take: applied here (the rest go to generate as they are).
OWN = ("seed", "presence_penalty", "frequency_penalty", "logit_bias", "return_full_text")


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
    unknown = set(parameters) - set(PARAMETERS) - {"stop", "logit_bias"}
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
    for key in ("min_new_tokens", "no_repeat_ngram_size"):
        if merged.get(key, 0) < 0:
            raise RequestError(f"{key} must be at least 0")
    if not 0 < merged.get("typical_p", 1.0) <= 1:
        raise RequestError("typical_p must be in (0, 1]")
    if parameters.get("logit_bias"):
        merged["logit_bias"] = logit_bias(parameters["logit_bias"])
    if not merged.get("do_sample"):
        for key in ("temperature", "top_p", "top_k", "typical_p"):
            merged.pop(key, None)
    return merged


def logit_bias(value):
    """{"<token id>": bias} (OpenAI's logit_bias) as {id: bias}, each bias in [-100, 100]."""
    try:
        bias = {int(token): float(amount) for token, amount in dict(value).items()}
    except (TypeError, ValueError):
        raise RequestError('parameter logit_bias must be {"<token id>": bias}') from None
    if any(token < 0 or not -100 <= amount <= 100 for token, amount in bias.items()):
        raise RequestError("parameter logit_bias: token ids >= 0, biases in [-100, 100]")
    return bias


class _Penalties(LogitsProcessor):
    """OpenAI's presence and frequency penalties over the tokens generated so far (those
    past the prompt's `start`)."""

    def __init__(self, start, presence, frequency):
        self.start, self.presence, self.frequency = start, presence, frequency

    def __call__(self, input_ids, scores):
        generated = input_ids[:, self.start :]
        counts = torch.zeros_like(scores).scatter_add_(
            1, generated, torch.ones_like(generated, dtype=scores.dtype)
        )
        return scores - counts * self.frequency - (counts > 0).to(scores.dtype) * self.presence


def _generate(loaded, kwargs, input_ids, mask, **extra):
    """generate, with the parameters it does not take applied here."""
    kwargs = dict(kwargs)
    own = {key: kwargs.pop(key, None) for key in OWN}
    if own["logit_bias"]:  # transformers' sequence_bias of one-token sequences
        kwargs["sequence_bias"] = [[[token], bias] for token, bias in own["logit_bias"].items()]
    if own["presence_penalty"] or own["frequency_penalty"]:
        penalties = _Penalties(
            input_ids.shape[1], own["presence_penalty"] or 0.0, own["frequency_penalty"] or 0.0
        )
        kwargs["logits_processor"] = LogitsProcessorList([penalties])
    if own["seed"] is not None:
        torch.manual_seed(own["seed"])
    with torch.no_grad():
        return loaded["model"].generate(
            input_ids=input_ids,
            attention_mask=mask,
            pad_token_id=loaded["tokenizer"].pad_token_id,
            **extra,
            **kwargs,
        )


def _stops(parameters):
    stop = parameters.get("stop") or []
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


def _cut(text, stops, start=0):
    """`text` before the first stop sequence found at or past `start`."""
    cuts = [text.find(s, start) for s in stops if s in text[start:]]
    return text[: min(cuts)] if cuts else text


def _held(tokenizer, ids, minimum):
    """Characters of the answer before min_new_tokens: no stop sequence is looked for there
    (the last of those tokens may open one)."""
    if minimum <= 1:
        return 0
    return len(tokenizer.decode(ids[: minimum - 1], skip_special_tokens=True).lstrip())


def generated_text(text, raw, answer, full):
    """generated_text: the answer, or with return_full_text the input, then the answer as
    the model began it (`raw`: its leading whitespace kept)."""
    if not full:
        return {"generated_text": answer}
    return {"generated_text": text + raw[: len(raw) - len(raw.lstrip())] + answer}


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
    output = _generate(loaded, kwargs, input_ids.to(device), mask.to(device))
    if causal:
        output = output[:, width:]
    minimum, full = kwargs.get("min_new_tokens", 0), kwargs.get("return_full_text", False)
    answers = []
    for text, ids in zip(data["inputs"], output, strict=True):
        raw = tokenizer.decode(ids, skip_special_tokens=True)
        answer = _cut(raw.strip(), stop, _held(tokenizer, ids, minimum) if stop else 0)
        answers.append(generated_text(text, raw, answer, full))
    return answers


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
            _generate(loaded, kwargs, ids, torch.ones_like(ids), streamer=streamer)
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
    full = kwargs.get("return_full_text", False)
    answer = generated_text(data["inputs"][0], text, _cut(text.strip(), stop), full)
    yield json.dumps(answer) + "\n"


def output_fn(prediction, accept):
    if accept not in (None, "", "*/*") and accept.split(";")[0].strip() != JSON:
        raise RequestError(f"cannot answer in {accept!r}; ask for {JSON}", 406)
    return json.dumps(prediction)
