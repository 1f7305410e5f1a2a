"""The gateway store on AWS: one DynamoDB table (pk, sk), created and destroyed by
`llmship expose`.

    pk = key#<id>        sk = key               the key record (hash, routes, limits)
    pk = key#<id>        sk = count#<window>    a counter (atomic ADD), with a TTL
    pk = log#<UTC day>   sk = <at>#<random>     one request log entry, with a TTL

Counters and log entries carry `expires` (epoch seconds), the table's TTL attribute,
so DynamoDB removes them itself. On-demand billing: nothing is paid while idle.
"""

from __future__ import annotations

import json
import secrets
import time
from decimal import Decimal

from llmship.aws.errors import aws_call
from llmship.gateway.keys import KeyRecord
from llmship.gateway.store import RequestLog

LOG_DAYS = 30


def _day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


class DynamoStore:
    """GatewayStore on a DynamoDB table (through boto3's low-level client)."""

    def __init__(self, table: str, *, session=None, client=None):
        if client is None:
            from llmship.aws.session import client as make_client
            from llmship.aws.session import make_session

            client = make_client(session or make_session(), "dynamodb")
        self.table, self.db = table, client

    def _call(self, operation: str, **kwargs):
        with aws_call("dynamodb", operation, self.table):
            return getattr(self.db, operation)(TableName=self.table, **kwargs)

    def put_key(self, record: KeyRecord) -> None:
        item = {
            "pk": {"S": f"key#{record.key_id}"},
            "sk": {"S": "key"},
            "digest": {"S": record.digest},
            "name": {"S": record.name},
            "routes": {"S": json.dumps(list(record.routes))},
            "rpm": {"N": str(record.requests_per_minute)},
            "tpd": {"N": str(record.tokens_per_day)},
            "created": {"N": repr(record.created)},
            "details": {"S": json.dumps(record.details)},
        }
        if record.revoked is not None:
            item["revoked"] = {"N": repr(record.revoked)}
        self._call("put_item", Item=item)

    def get_key(self, key_id: str) -> KeyRecord | None:
        item = self._call(
            "get_item", Key={"pk": {"S": f"key#{key_id}"}, "sk": {"S": "key"}}, ConsistentRead=True
        ).get("Item")
        return _record(item) if item else None

    def list_keys(self) -> list[KeyRecord]:
        items, start = [], None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            page = self._call(
                "scan",
                FilterExpression="sk = :k",
                ExpressionAttributeValues={":k": {"S": "key"}},
                **extra,
            )
            items += page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        return sorted((_record(i) for i in items), key=lambda r: r.created)

    def add(self, key_id: str, window: str, amount: int, expires: float) -> int:
        answer = self._call(
            "update_item",
            Key={"pk": {"S": f"key#{key_id}"}, "sk": {"S": f"count#{window}"}},
            UpdateExpression="ADD #v :n SET expires = :e",
            ExpressionAttributeNames={"#v": "value"},
            ExpressionAttributeValues={":n": {"N": str(amount)}, ":e": {"N": str(int(expires))}},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["value"]["N"])

    def count(self, key_id: str, window: str) -> int:
        item = self._call(
            "get_item",
            Key={"pk": {"S": f"key#{key_id}"}, "sk": {"S": f"count#{window}"}},
            ConsistentRead=True,
        ).get("Item")
        return int(item["value"]["N"]) if item else 0

    def log(self, entry: RequestLog) -> None:
        item = {
            "pk": {"S": f"log#{_day(entry.at)}"},
            "sk": {"S": f"{entry.at:.6f}#{secrets.token_hex(4)}"},
            "key_id": {"S": entry.key_id},
            "route": {"S": entry.route},
            "target": {"S": entry.target},
            "status": {"N": str(entry.status)},
            "latency_ms": {"N": str(Decimal(repr(entry.latency_ms)))},
            "prompt_tokens": {"N": str(entry.prompt_tokens)},
            "completion_tokens": {"N": str(entry.completion_tokens)},
            "stream": {"BOOL": entry.stream},
            "expires": {"N": str(int(entry.at + LOG_DAYS * 86400))},
        }
        if entry.prompt is not None:
            item["prompt"] = {"S": entry.prompt}
        self._call("put_item", Item=item)

    def logs(self, since: float) -> list[RequestLog]:
        out: list[RequestLog] = []
        now = time.time()
        since = max(since, now - LOG_DAYS * 86400)  # older entries have expired anyway
        day = since
        while _day(day) <= _day(now):
            start = None
            while True:
                extra = {"ExclusiveStartKey": start} if start else {}
                page = self._call(
                    "query",
                    KeyConditionExpression="pk = :p AND sk >= :s",
                    ExpressionAttributeValues={
                        ":p": {"S": f"log#{_day(day)}"},
                        ":s": {"S": f"{since:.6f}"},
                    },
                    **extra,
                )
                out += [_log(item) for item in page.get("Items", [])]
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
            day += 86400
        return sorted(out, key=lambda e: e.at)


def _record(item: dict) -> KeyRecord:
    return KeyRecord(
        key_id=item["pk"]["S"].removeprefix("key#"),
        digest=item["digest"]["S"],
        name=item["name"]["S"],
        routes=tuple(json.loads(item["routes"]["S"])),
        requests_per_minute=int(item["rpm"]["N"]),
        tokens_per_day=int(item["tpd"]["N"]),
        created=float(item["created"]["N"]),
        revoked=float(item["revoked"]["N"]) if "revoked" in item else None,
        details=json.loads(item.get("details", {}).get("S", "{}")),
    )


def _log(item: dict) -> RequestLog:
    return RequestLog(
        at=float(item["sk"]["S"].split("#")[0]),
        key_id=item["key_id"]["S"],
        route=item["route"]["S"],
        target=item["target"]["S"],
        status=int(item["status"]["N"]),
        latency_ms=float(item["latency_ms"]["N"]),
        prompt_tokens=int(item["prompt_tokens"]["N"]),
        completion_tokens=int(item["completion_tokens"]["N"]),
        stream=item["stream"]["BOOL"],
        prompt=item.get("prompt", {}).get("S"),
    )
