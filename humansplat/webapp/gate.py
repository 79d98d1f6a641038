"""The app's door to the queue: what every call must pass before it waits for a worker.

Installed on the server's queue (:func:`install_gate`), it sees each call's JSON exactly as
sent, before the web framework converts or checks anything, and:

1. checks the inputs of the app's endpoints (:mod:`.inputs`: count, types, ranges; a photo
   must be an upload, never a server, session or result path) and refuses with one message
   per parameter (HTTP 422, the form ``gradio_client`` prints parameter by parameter);
2. holds the queue limit for device work (reconstructions, animations): at most ``size``
   such calls waiting or running. Gradio's own ``max_size`` is checked *before* it awaits the
   event's validator and the event is appended *after* it, so calls arriving together all
   pass the check (gradio 6.31, ``Queue.push``), and it counts every endpoint, so light ones
   were refused behind heavy ones. Here the count and the append happen under one lock, and
   only device work counts; light endpoints (part views) have their own concurrency group
   and are never refused for a full queue;
3. replaces any other refusal text from the framework (it can name server paths or internal
   objects) by one line of the app's own; the original goes to the server log.

Only plain data crosses: the call's ``fn_index``, ``data`` and ``session_hash``."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from .inputs import PhotoInput, check_inputs

log = logging.getLogger("humansplat.app")

__all__ = ["Rule", "QueueGate", "install_gate", "QUEUE_FULL", "REFUSED"]

QUEUE_FULL = ("The queue is full ({n} runs waiting or in progress, the most this server "
              "takes); please try again in a minute.")
REFUSED = ("This request could not be processed: check the inputs against the API "
           "description (/gradio_api/info).")


@dataclass(frozen=True)
class Rule:
    """The inputs of one event (``inputs.check_inputs`` spec) and whether it is device work
    (counted against the queue limit)."""

    spec: tuple
    heavy: bool = False


def _refusal(spec, messages: list[str | None]) -> list[dict[str, Any]]:
    """Gradio's validation payload: one entry per input, in order (the page paints each on its
    input; gradio_client prints ``- name: message`` for the failed ones)."""
    return [{"__type__": "validate", "is_valid": m is None, "message": m or "",
             "parameter_name": p.name} for p, m in zip(spec, messages)]


class QueueGate:
    """rules: ``fn_index -> Rule`` for the app's events; store: the session store (which
    decides where a photo may come from); size: device-work calls waiting or running at most;
    heavy_concurrency_id: the concurrency group of device work (where they are counted)."""

    def __init__(self, queue, rules: dict[int, Rule], store, size: int,
                 heavy_concurrency_id: str):
        self.queue = queue
        self.rules = dict(rules)
        self.store = store
        self.size = int(size)
        self.heavy_id = heavy_concurrency_id
        self._push = queue.push  # the framework's own
        self._lock = asyncio.Lock()
        self.refused_full = 0

    def in_system(self) -> int:
        """Device-work calls waiting or running now."""
        q = self.queue.event_queue_per_concurrency_id.get(self.heavy_id)
        return 0 if q is None else len(q.queue) + q.current_concurrency

    def problems(self, rule: Rule, data) -> list[str | None]:
        messages = check_inputs(rule.spec, data)
        if any(messages):
            return messages
        for i, p in enumerate(rule.spec):
            if isinstance(p, PhotoInput):
                messages[i] = self.store.upload_problem(data[i]["path"])
        return messages

    async def push(self, body, request, username):
        rule = self.rules.get(body.fn_index)
        if rule is not None:
            messages = self.problems(rule, body.data)
            if any(messages):
                return False, _refusal(rule.spec, messages), "validator_error"
        if rule is not None and rule.heavy:
            async with self._lock:  # the count and the append, with nothing in between
                n = self.in_system()
                if n >= self.size:
                    self.refused_full += 1
                    return False, QUEUE_FULL.format(n=n), "queue_full"
                result = await self._push(body=body, request=request, username=username)
        else:
            result = await self._push(body=body, request=request, username=username)
        ok, detail, state = result
        if state == "error":
            log.warning("a call was refused by the framework: %s", detail)
            return ok, REFUSED, state
        return result


def install_gate(blocks, rules: dict[int, Rule], store, size: int,
                 heavy_concurrency_id: str) -> QueueGate:
    """Put a :class:`QueueGate` in front of ``blocks``' queue (after ``blocks.queue(...)``,
    which must have ``max_size=None``: the gate holds the limit)."""
    queue = blocks._queue
    if queue.max_size is not None:
        raise ValueError("the gate holds the queue limit: call blocks.queue(max_size=None)")
    gate = QueueGate(queue, rules, store, size, heavy_concurrency_id)
    queue.push = gate.push
    return gate
