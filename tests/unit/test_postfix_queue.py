"""Reading a Postfix queue while its queue manager moves messages: each message once, empty read twice."""

import json

from loadkit.instances import count_queue_listing, drain_queue


def listing(*rows: tuple[str, str]) -> str:
    """``postqueue -j`` output: one JSON object a line, (queue_id, queue_name)."""
    return "\n".join(json.dumps({"queue_name": name, "queue_id": queue_id, "recipients": []})
                     for queue_id, name in rows) + "\n"


def test_a_message_listed_twice_while_it_moves_counts_once_in_its_later_queue():
    # showq read "active" with 4B2 in it, then "deferred" after the queue manager had moved it there.
    counts = count_queue_listing(listing(("4B1", "incoming"), ("4B2", "active"), ("4B2", "deferred"), ("4B3", "deferred")))

    assert counts == {"maildrop": 0, "incoming": 1, "active": 0, "deferred": 2, "hold": 0}
    assert sum(counts.values()) == 3


def test_an_empty_listing_counts_every_queue_as_empty():
    assert count_queue_listing("") == {"maildrop": 0, "incoming": 0, "active": 0, "deferred": 0, "hold": 0}


def test_the_drain_trusts_an_empty_queue_only_when_it_reads_empty_twice_in_a_row():
    reads = iter([5, 0, 1, 0, 0, 7])  # the first 0 missed a message on its way back to active
    read_count = []

    def queue_size():
        read_count.append(1)
        return next(reads)

    result = drain_queue(queue_size, timeout=60, interval=0.2, sleep=lambda _seconds: None)

    assert result["drained"] is True and result["left"] == 0
    assert len(read_count) == 5  # stopped at the second 0 in a row, not at the first


def test_a_drain_that_times_out_says_how_many_are_left():
    clock = iter(range(100))
    result = drain_queue(lambda: 3, timeout=0.0, interval=0.2, sleep=lambda _seconds: next(clock))

    assert result == {"drained": False, "seconds": result["seconds"], "timeout": 0.0, "left": 3}
