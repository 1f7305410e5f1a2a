"""A SageMaker request whose `inputs` is a list is admitted whole or not at all: a list
the queue cannot take gets 503 with Retry-After and leaves none of its prompts in the
engine; a list longer than serve.max_inputs gets 413 saying how to raise the limit."""

from __future__ import annotations

import time
from contextlib import contextmanager

import httpx
import pytest

from helpers import engine_server
from llmship.config.serving import ServeConfig
from llmship.engine.engine import RequestHandle
from llmship.engine.sampling import SamplingParams
from llmship.errors import ConfigError

PROMPTS = ["Anna: lunch at 1?\nTom: yes", "Tom: the bus is late\nAnna: again?"]
GREEDY = {"max_new_tokens": 6}


def invoke(url: str, inputs) -> httpx.Response:
    return httpx.post(
        f"{url}/invocations", json={"inputs": inputs, "parameters": GREEDY}, timeout=60
    )


def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def all_free(engine) -> bool:
    stats = engine.stats()
    return stats["running"] == stats["waiting"] == 0 and stats["free_slots"] == engine.max_batch


def occupy(engine) -> RequestHandle:
    """A request that holds a slot or a queue place for many slow steps."""
    return engine.submit([1, 2, 3], SamplingParams(max_new_tokens=200, ignore_eos=True))


@contextmanager
def slowed(engine, seconds: float):
    """Every forward pass of the engine's model takes at least `seconds` longer."""
    forward = engine.model.forward

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return forward(*args, **kwargs)

    engine.model.forward = slow
    try:
        yield
    finally:
        del engine.model.forward


def test_a_list_the_queue_cannot_take_leaves_none_of_its_prompts_behind(engine_artifact):
    settings = {"max_batch": 1, "max_waiting": 2, "max_inputs": 2, "retry_after_s": 5}
    with engine_server(engine_artifact, **settings) as (url, engine):
        with slowed(engine, 0.05):
            busy = [occupy(engine)]
            wait_for(lambda: engine.stats()["running"] == 1, "the slot to be taken")
            busy.append(occupy(engine))  # one queue place left: the list needs two
            before = engine.counts()
            refused = invoke(url, PROMPTS)
            # The first prompt took the last place; it is dropped, never run.
            wait_for(
                lambda: engine.counts()["cancelled"] == before["cancelled"] + 1,
                "the list's queued prompt to be cancelled",
            )
            assert engine.stats()["waiting"] == 1  # only the other request's place
            assert engine.stats()["running"] == 1
            assert engine.counts()["refused"] == before["refused"] + 1
            for handle in busy:
                handle.cancel()
        wait_for(lambda: all_free(engine), "every slot and queue place to be free")
        answered = invoke(url, PROMPTS)  # with room, the same list is answered whole
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert "at capacity" in refused.json()["message"]
    assert answered.status_code == 200 and len(answered.json()) == 2


def test_a_list_answers_as_its_prompts_do_one_by_one(engine_artifact):
    with engine_server(engine_artifact, max_batch=2) as (url, _engine):
        together = invoke(url, PROMPTS)
        alone = [invoke(url, prompt).json()[0] for prompt in PROMPTS]
    assert together.status_code == 200 and together.json() == alone


def test_a_list_over_max_inputs_is_refused_with_the_setting_to_raise(engine_artifact):
    with engine_server(engine_artifact, max_batch=2) as (url, engine):  # max_inputs: max_batch
        answer = invoke(url, [*PROMPTS, "Anna will"])
        assert engine.counts() == {"refused": 0, "cancelled": 0, "timed_out": 0}
        assert all_free(engine)
    assert answer.status_code == 413
    message = answer.json()["message"]
    assert "3 prompts" in message and "at most 2" in message and "serve.max_inputs" in message


def test_max_inputs_must_fit_the_queue():
    assert ServeConfig(max_batch=8).inputs() == 8
    assert ServeConfig(max_batch=8, max_waiting=3).inputs() == 3
    with pytest.raises(ConfigError, match=r"serve\.max_inputs: .*over max_waiting \(3\)"):
        ServeConfig(max_batch=8, max_waiting=3).with_options(max_inputs=4)
