"""Group commit for signatures: the requests that arrive together share one transaction.

A viral petition gets hundreds of signatures a second.  One transaction
each would make every signature pay for a commit and a counter update;
instead each request joins the batch being gathered, the batch commits
once, and only then does each request get its answer (201 means
committed).  Batches size themselves: while one batch is being written
the next gathers, so under load they grow and when idle a signature
waits for nothing but the next turn of the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from .db_runner import DatabaseRunner
from .publisher import Publisher
from .signature_store import BatchOutcome, SignatureRequest

log = logging.getLogger("tornado_petitions.signatures")


class SignatureBatcher:
    """Gathers signature requests, writes them in batches, publishes what committed, answers each.

    ``mail_queued`` is called after a batch recorded milestones, whose mail
    was queued with them: the application sets it to wake its mail sender,
    as a status change does.
    """

    def __init__(
        self,
        runner: DatabaseRunner,
        apply: Callable[[Sequence[SignatureRequest]], BatchOutcome],
        publisher: Publisher,
        *,
        max_batch: int = 500,
    ) -> None:
        self.max_batch = max_batch
        self._runner = runner
        self._apply = apply
        self._publisher = publisher
        self._queue: list[tuple[SignatureRequest, asyncio.Future]] = []
        self._writing: asyncio.Task | None = None
        self.mail_queued: Callable[[], None] = lambda: None

    async def submit(self, request: SignatureRequest) -> dict:
        """The petition after ``request`` committed; raises its ApiError (404, 409) instead.

        Raises whatever the database raised if the whole batch failed.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((request, future))
        if self._writing is None:
            # Starts on the next turn of the loop: requests read in this turn join the batch.
            self._writing = loop.create_task(self._write_batches())
        return await future

    async def _write_batches(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                try:
                    outcome = await self._runner.run(self._apply, [request for request, _ in batch])
                except Exception as error:
                    log.exception("a batch of %d signatures failed; none of it was written", len(batch))
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                # Counts before milestones: the hub flushes counts ahead of each lifecycle event.
                if outcome.counts:
                    self._publisher.publish_counts(outcome.counts)
                for event in outcome.events:
                    self._publisher.publish(event)
                if outcome.events:  # milestones, and the mail they queued
                    self.mail_queued()
                for (_, future), result in zip(batch, outcome.results, strict=True):
                    if future.done():  # the client went away
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._writing = None
