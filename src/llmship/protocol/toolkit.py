"""The Hugging Face inference toolkit's payloads, as SageMaker endpoints take and give them.

Requests are {"inputs": ..., "parameters": {...}}; answers [{"generated_text": ...}]
(or one such object); streams are JSON lines of tokens ({"token": {"text": ...}}), TGI's
behind "data:". Torch-free and boto3-free: the server, the gateway (in its Lambda zip)
and `invoke` all read and write them here.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator


def prompt_body(prompt: str, parameters: dict | None = None) -> bytes:
    """The Hugging Face toolkit payload: {"inputs": prompt, "parameters": {...}}."""
    payload: dict = {"inputs": prompt}
    if parameters:
        payload["parameters"] = parameters
    return json.dumps(payload).encode()


def generated_text(body: bytes) -> str | None:
    """The text of a toolkit answer ([{"generated_text": ...}] or one such object),
    or None when the body is in another shape."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        return None
    texts = [item.get("generated_text") if isinstance(item, dict) else None for item in data]
    if not all(isinstance(text, str) for text in texts):
        return None
    return "\n".join(texts)


def stream_text(parts: Iterable[bytes]) -> Iterator[str]:
    """Text pieces from a stream of PayloadParts. JSON lines of tokens ({"token": {"text"}},
    as llmship's server and TGI send them, TGI's behind "data:") yield each token's text;
    a part may hold several lines or half of one. Any other stream is passed on as text."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    buffer, json_lines = b"", None
    for part in parts:
        if json_lines is None:
            json_lines = part.lstrip()[:1] == b"{" or part.lstrip().startswith(b"data:")
        if not json_lines:
            if text := decoder.decode(part):
                yield text
            continue
        buffer += part
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if piece := _token_text(line):
                yield piece
    if json_lines and (piece := _token_text(buffer)):
        yield piece
    elif json_lines is False and (rest := decoder.decode(b"", final=True)):
        yield rest


def _token_text(line: bytes) -> str:
    """A token's text from one JSON line; "" for lines that carry none (the final
    generated_text line repeats what the tokens already said)."""
    line = line.strip()
    if line.startswith(b"data:"):
        line = line[5:].strip()
    if not line:
        return ""
    try:
        event = json.loads(line)
    except ValueError:
        return line.decode("utf-8", "replace")
    token = event.get("token") if isinstance(event, dict) else None
    if isinstance(token, dict) and not token.get("special") and isinstance(token.get("text"), str):
        return token["text"]
    return ""
