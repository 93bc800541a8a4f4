"""Postfix's queue sizes, once a second, from ``postqueue -j`` of a loadkit instance."""

from __future__ import annotations

from pathlib import Path

from loadkit.probes._base import DEFAULT_POSTFIX_STATE, ProbeError


class PostfixQueueProbe:
    """Messages in each queue (maildrop, incoming, active, deferred, hold) of the instance in `state_dir`."""

    name = "postfix"

    def __init__(self, state_dir: str | Path | None = None):
        self.state_dir = Path(state_dir or DEFAULT_POSTFIX_STATE).absolute()
        self._postfix = None

    @property
    def postfix(self):
        from loadkit.instances import InstanceError, Postfix

        if self._postfix is None:
            try:
                self._postfix = Postfix.from_state(self.state_dir)
            except InstanceError as error:
                raise ProbeError(str(error)) from None
            if self._postfix is None:
                raise ProbeError(f"no Postfix instance in {self.state_dir} (loadkit target postfix up --dir DIR)")
        return self._postfix

    @property
    def log_path(self) -> Path:
        return self.postfix.log_path

    def process_ids(self) -> list[int]:
        """The master's pid and the sink's: roots of the target's processes, for the host probe."""
        postfix = self.postfix
        pids = [postfix.master_pid] + ([postfix.sink.pid] if postfix.sink is not None else [])
        return [pid for pid in pids if pid]

    def sample(self) -> dict:
        from loadkit.instances import InstanceError

        try:
            counts = self.postfix.queue_counts()
        except InstanceError as error:
            raise ProbeError(f"postqueue: {error}") from None
        return {**counts, "total": sum(counts.values())}
