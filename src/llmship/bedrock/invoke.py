"""Asking a Bedrock-hosted model: Converse / ConverseStream for fine-tuned models behind
provisioned throughput or an on-demand deployment, InvokeModel for imported models.

Converse takes messages and applies the base model's own chat template, so the user
turn is the prompt exactly as the training records had it (data.prompt_template
filled, data.system_prompt as the system block). An imported model takes the native
request body of its architecture; for Llama that is {"prompt", "max_gen_len",
"temperature", "top_p"} and the answer comes back as {"generation": ...}, so llmship
renders the prompt with the run's chat template itself, as it does locally.

Functions take a boto3 session or a ready bedrock-runtime client (tests pass a client
under botocore's Stubber).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmship.aws.errors import aws_call
from llmship.errors import AwsError, EvalError

Generator = Callable[[list[dict[str, Any]]], list[str]]
STREAM_ERRORS = (
    "internalServerException",
    "modelStreamErrorException",
    "validationException",
    "throttlingException",
    "serviceUnavailableException",
)


def runtime_of(session_or_client):
    """A bedrock-runtime client from a session, or the client itself."""
    if hasattr(session_or_client, "converse"):
        return session_or_client
    from llmship.aws.session import client

    return client(session_or_client, "bedrock-runtime")


def inference_config(params) -> dict[str, Any]:
    """Converse inferenceConfig from llmship's generation settings: greedy is temperature 0;
    sampling sends temperature and topP."""
    config: dict[str, Any] = {"maxTokens": params.max_new_tokens}
    if params.do_sample:
        config.update(temperature=params.temperature, topP=params.top_p)
    else:
        config["temperature"] = 0.0
    return config


def user_message(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def converse(
    session, model_id: str, messages: list[dict], *, system: str | None, inference: dict
) -> dict:
    """One Converse call; the whole response (answer_text reads its text)."""
    request: dict[str, Any] = {
        "modelId": model_id,
        "messages": messages,
        "inferenceConfig": inference,
    }
    if system:
        request["system"] = [{"text": system}]
    with aws_call("bedrock-runtime", "Converse", model_id):
        return runtime_of(session).converse(**request)


def answer_text(response: dict) -> str:
    """The text blocks of a Converse answer, joined."""
    content = response.get("output", {}).get("message", {}).get("content", [])
    return "".join(block.get("text", "") for block in content)


def converse_stream(
    session, model_id: str, messages: list[dict], *, system: str | None, inference: dict
) -> Iterator[str]:
    """ConverseStream: each text delta as it arrives; an error event is an AwsError."""
    request: dict[str, Any] = {
        "modelId": model_id,
        "messages": messages,
        "inferenceConfig": inference,
    }
    if system:
        request["system"] = [{"text": system}]
    with aws_call("bedrock-runtime", "ConverseStream", model_id):  # EventStreamError too
        stream = runtime_of(session).converse_stream(**request)["stream"]
        for event in stream:
            for name in STREAM_ERRORS:
                if name in event:
                    message = event[name].get("message", "")
                    raise AwsError(
                        f"bedrock-runtime ConverseStream on {model_id}: {name}: {message}"
                    )
            delta = event.get("contentBlockDelta", {}).get("delta", {})
            if delta.get("text"):
                yield delta["text"]


def llama_body(prompt: str, params) -> dict[str, Any]:
    """The native Llama request body of an imported model."""
    body: dict[str, Any] = {"prompt": prompt, "max_gen_len": params.max_new_tokens}
    if params.do_sample:
        body.update(temperature=params.temperature, top_p=params.top_p)
    else:
        body["temperature"] = 0.0
    return body


def imported_text(payload: dict) -> str | None:
    """The generated text of an imported model's answer: Llama's "generation", or the
    completion shapes other architectures answer in."""
    if isinstance(payload.get("generation"), str):
        return payload["generation"]
    for key in ("choices", "outputs"):
        items = payload.get(key)
        if isinstance(items, list) and items and isinstance(items[0].get("text"), str):
            return items[0]["text"]
    return None


def invoke_imported(session, model_arn: str, prompt: str, params) -> str:
    """InvokeModel on an imported model with the Llama body; its generated text."""
    with aws_call("bedrock-runtime", "InvokeModel", model_arn):
        response = runtime_of(session).invoke_model(
            modelId=model_arn,
            body=json.dumps(llama_body(prompt, params)).encode(),
            contentType="application/json",
            accept="application/json",
        )
        payload = json.loads(response["body"].read())
    text = imported_text(payload)
    if text is None:
        raise AwsError(f"bedrock-runtime InvokeModel on {model_arn}: no text in {payload!r:.200}")
    return text


def _parallel(one: Callable[[dict[str, Any]], str], workers: int) -> Generator:
    def generate_rows(rows: list[dict[str, Any]]) -> list[str]:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(rows)))) as pool:
            return list(pool.map(one, rows))

    return generate_rows


def converse_generator(
    session, model_id: str, prompt_format, params, workers: int = 4
) -> Generator:
    """Eval rows answered through Converse, prompts built as the training records were."""
    runtime = runtime_of(session)
    inference = inference_config(params)

    def one(fields: dict[str, Any]) -> str:
        if prompt_format.input_field not in fields:
            raise EvalError(f"an eval row has no {prompt_format.input_field!r} field")
        text = prompt_format.prompt_template.format_map(fields)
        response = converse(
            runtime,
            model_id,
            [user_message(text)],
            system=prompt_format.system_prompt,
            inference=inference,
        )
        return answer_text(response)

    return _parallel(one, workers)


def imported_generator(
    session, model_arn: str, prompt_format, tokenizer, params, workers: int = 4
) -> Generator:
    """Eval rows answered by an imported model, prompts rendered as local training did."""
    runtime = runtime_of(session)

    def one(fields: dict[str, Any]) -> str:
        return invoke_imported(
            runtime, model_arn, prompt_format.prompt_text(fields, tokenizer), params
        )

    return _parallel(one, workers)
