"""CloudWatch Logs: the last lines a container wrote, and removing a deployment's logs.

A failed endpoint's FailureReason rarely says enough; the container's own last lines
(an import error, an out-of-memory kill, a missing file) usually do.
"""

from __future__ import annotations

from llmship.aws.errors import ignore_not_found


def last_lines(logs, group: str, limit: int = 30, streams: int = 3) -> list[str]:
    """The last `limit` lines of the `streams` most recently written streams in `group`,
    oldest first; empty when the group does not exist (yet)."""
    found, events = [], []
    with ignore_not_found("logs", "GetLogEvents", group):
        found = logs.describe_log_streams(
            logGroupName=group, orderBy="LastEventTime", descending=True, limit=streams
        )["logStreams"]
        for stream in found:
            events += [
                (event["timestamp"], stream["logStreamName"], event["message"].rstrip("\n"))
                for event in logs.get_log_events(
                    logGroupName=group,
                    logStreamName=stream["logStreamName"],
                    limit=limit,
                    startFromHead=False,
                )["events"]
            ]
    events.sort()
    prefix = len(found) > 1
    return [f"[{name}] {text}" if prefix else text for _, name, text in events[-limit:]]


def delete_log_group(logs, group: str) -> bool:
    """Delete `group`; False when it did not exist."""
    with ignore_not_found("logs", "DeleteLogGroup", group) as outcome:
        logs.delete_log_group(logGroupName=group)
    return not outcome.missing
