"""AWS event stream framing (application/vnd.amazon.eventstream), as botocore reads it.

A message: 4-byte total length, 4-byte headers length, CRC32 of those 8 bytes, the
headers (1-byte name length, name, type 7 = string with a 2-byte length, value), the
payload, then CRC32 of everything before it. Used for
InvokeEndpointWithResponseStream: PayloadPart events, and ModelStreamError exceptions
when the model fails mid-stream.
"""

from __future__ import annotations

import json
import struct
import zlib

STRING = 7


def _headers(values: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in values.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One framed message."""
    header_bytes = _headers(headers)
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack("!II", total, len(header_bytes))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + header_bytes + payload
    return body + struct.pack("!I", zlib.crc32(body))


def payload_part(data: bytes) -> bytes:
    """A PayloadPart event carrying `data` as its Bytes member."""
    return encode_message(
        {
            ":message-type": "event",
            ":event-type": "PayloadPart",
            ":content-type": "application/octet-stream",
        },
        data,
    )


def model_stream_error(message: str, error_code: str = "ModelStreamError") -> bytes:
    """A ModelStreamError exception, which boto3 raises while the caller iterates."""
    return encode_message(
        {
            ":message-type": "exception",
            ":exception-type": "ModelStreamError",
            ":content-type": "application/json",
        },
        json.dumps({"Message": message, "ErrorCode": error_code}).encode(),
    )
