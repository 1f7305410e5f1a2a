"""Test-only wrapper: run the llmship CLI and die abruptly at the Nth creating AWS call.

    python kill_after_call.py N before|after LOG -- llmship arguments...

Every botocore session the process makes gets an event hook; calls whose operation
creates or writes something (Create*, Put*, Register*, Upload*, Complete*) are counted
and appended to LOG. At the Nth, `before` exits before the request is sent and `after`
exits once AWS has answered, with os._exit: no cleanup, no finally blocks, as a
SIGKILL or a power cut would leave things. N=0 never kills (it lists the calls).
The product holds no fault-injection code; this file is the whole of it.

transformers and torch are made unimportable: the AWS path must never need them (a
design rule this checks), and each process starts a second faster.
"""

from __future__ import annotations

import os
import sys

import botocore.session

CREATING = ("Create", "Put", "Register", "Upload", "Complete")


def main() -> None:
    kill_at, when, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    assert sys.argv[4] == "--" and when in ("before", "after")
    seen = [0]

    def hook(model, **_):
        if not model.name.startswith(CREATING):
            return
        seen[0] += 1
        with open(log, "a") as handle:
            handle.write(f"{model.name}\n")
        if seen[0] == kill_at:
            os._exit(137)

    original = botocore.session.Session.__init__

    def patched(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.register(f"{when}-call", hook)

    botocore.session.Session.__init__ = patched
    sys.modules["transformers"] = sys.modules["torch"] = None  # import raises ImportError
    sys.argv = ["llmship", *sys.argv[5:]]
    from llmship.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
