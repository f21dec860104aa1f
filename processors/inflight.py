"""A Kafka transaction that finishes on a worker thread while the processor consumes its next batch.

Once a batch's records are handed to the producer, what is left is waiting: kafka-python's sender thread compresses
and checksums them and the broker acknowledges them (``flush``), then three round trips to the coordinators
(AddOffsetsToTxn, TxnOffsetCommit, EndTxn). Done in line, the processor sat idle for about a fifth of its run
(bench/processor_bench.py). Here that wait overlaps the next poll, which spends its time parsing fetched records.

At most one transaction is ever open: the processor waits for this one before it begins the next. The next batch is
computed on top of this one's state before the commit is known; if the commit fails, the processor drops every
in-memory state and rebuilds it from Kafka (``ProcessorService._recover``), so nothing computed on top of a failed
commit is ever published.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata


class BackgroundCommit:
    """``flush`` → check every send → ``send_offsets_to_transaction`` → ``commit_transaction``, off the main thread.

    kafka-python waits without a deadline in the last two calls (across a broker restart such a wait was seen never
    to return), so :meth:`wait` gives up at a deadline: the batch then fails like any other error and the processor
    replaces the producer, whose ``init_transactions`` settles whatever this transaction left open.
    """

    def __init__(
        self,
        producer: KafkaProducer,
        futures: Sequence[Any],
        offsets: dict[TopicPartition, OffsetAndMetadata],
        group_metadata: Any,
        call_timeout_s: float,
    ) -> None:
        self._producer = producer
        self._futures = futures
        self._offsets = offsets
        self._group_metadata = group_metadata
        self._call_timeout_s = call_timeout_s
        self._error: BaseException | None = None
        self._deadline = time.monotonic() + 3 * call_timeout_s  # flush, offsets, commit: each had its own deadline
        self._thread = threading.Thread(target=self._run, name="qwatch-commit", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._producer.flush(timeout=self._call_timeout_s)
            failed = [f for f in self._futures if not f.is_done or f.failed()]
            if failed:
                errors = [f.exception for f in failed if f.is_done]
                why = errors[0] if errors else "not acknowledged when the flush returned"
                raise KafkaError(f"{len(failed)} of {len(self._futures)} sends failed: {why}")
            if self._offsets:
                self._producer.send_offsets_to_transaction(self._offsets, self._group_metadata)
            self._producer.commit_transaction()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by wait()
            self._error = exc

    def wait(self) -> None:
        """Block until the transaction is committed; raise what failed, or TimeoutError past the deadline."""
        self._thread.join(max(0.0, self._deadline - time.monotonic()))
        if self._thread.is_alive():
            raise TimeoutError(f"the transaction did not commit within {3 * self._call_timeout_s:.0f}s")
        if self._error is not None:
            raise self._error
