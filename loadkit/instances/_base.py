"""What every instance shares: its state folder, instance.json, start and stop.

An instance lives in one state folder and writes nothing outside it. The
folder is the instance's identity across commands: ``up`` writes
``instance.json`` there, ``status`` and ``down`` (often another process,
later) read it back with `Instance.from_state`.

A folder is only ever emptied when it holds an instance.json of the same
server, so pointing ``--dir`` at a folder with other files is refused
rather than wiped.

A damaged instance.json (a hand edit, a stray write) is refused in one line;
``down`` alone salvages it: the damaged fields are dropped and whatever the
rest (and the state folder's own pid files) still names is stopped.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import ClassVar

from loadkit.instances._system import InstanceError
from loadkit.results import ResultsError, instance_path, is_number, read_instance, write_instance

START_TIMEOUT = 30.0  # seconds a server gets to listen after its start command
STOP_TIMEOUT = 15.0  # seconds a server gets to exit before it is killed
PID_MAX = 1 << 22  # Linux's largest pid_max
# Fields named so hold text (paths, URLs, names); `_sound_field` checks the rest by name.
PATH_SUFFIXES = ("_url", "_dir", "_directory", "_json", "_socket", "_log", "_certificate", "_key", "_user")


def _sound_field(key: str, value) -> bool:
    """Whether one field of an instance.json has the type loadkit writes there."""
    if value is None:
        return True
    if key in ("port", "pid") or key.endswith("_pid"):
        most = 65535 if key == "port" else PID_MAX
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= most
    if key == "started_at":
        return is_number(value)
    if key in ("server", "state_dir", "url", "log", "protocol", "version", "password") or key.endswith(PATH_SUFFIXES):
        return isinstance(value, str)
    if key == "settings":
        return isinstance(value, dict)
    if key == "sink":  # a loadkit sink the instance started: where its files are, its pid
        return isinstance(value, dict) and isinstance(value.get("stats_json"), str) and not damaged_fields(value)
    return True


def damaged_fields(info: dict) -> list[str]:
    """The fields of an instance.json whose values are not of the type loadkit writes."""
    return [key for key, value in info.items() if not _sound_field(key, value)]


PORT_TRIES = 3
PORT_TAKEN = "Address already in use"


class Instance:
    """A real server on loopback, in a state folder of its own.

    ::

        with Postfix("reports/instances/postfix") as postfix:
            ...                      # started; stopped on leaving the block
        postfix = Postfix.from_state("reports/instances/postfix")  # another process
        postfix.is_running(); postfix.stop()

    Subclasses fill in `_start`, `_stop`, `_running`, `_describe`,
    `_restore` and `summary_lines`.
    """

    server: ClassVar[str] = ""
    host: str = "127.0.0.1"

    def __init__(self, state_dir, port: int = 0):
        self.state_dir = Path(state_dir).absolute()
        self.requested_port = port
        self.port = port or None
        self.started_at: float | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> "Instance":
        """Start the server(s); on failure stop whatever did start, then raise InstanceError."""
        self._check_installed()
        self._prepare_state_dir()
        for attempt in range(1, PORT_TRIES + 1):
            try:
                self._start()
                break
            except BaseException as error:
                self._stop(STOP_TIMEOUT)
                # A free port we chose can be taken by another process before our server binds it:
                # choose again, a few times, rather than fail a run for someone else's socket.
                if isinstance(error, InstanceError) and PORT_TAKEN in str(error) and attempt < PORT_TRIES:
                    continue
                self._write_info(running=False)
                raise
        self.started_at = time.time()
        self._write_info(running=True)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop everything this instance started and wait until it is gone."""
        self._stop(timeout)
        if self.info_path.exists():
            self._write_info(running=False)

    def is_running(self) -> bool:
        return self._running()

    def status(self) -> dict:
        """What ``loadkit target NAME status --json`` prints."""
        return {"server": self.server, "running": self.is_running(), "state_dir": str(self.state_dir),
                **self._describe()}

    def summary_lines(self) -> list[str]:
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- state folder -------------------------------------------------------------

    @property
    def info_path(self) -> Path:
        return instance_path(self.state_dir)

    @classmethod
    def read_info(cls, state_dir) -> dict | None:
        """instance.json of `state_dir`; InstanceError (one line) when it is damaged or another server's."""
        path = instance_path(Path(state_dir).absolute())
        try:
            info = read_instance(path.parent)
        except ResultsError as error:
            raise InstanceError(str(error)) from None
        if info is None:
            return None
        if info.get("server") != cls.server:
            raise InstanceError(f"{path.parent} is the state folder of {info.get('server')}, not {cls.server}")
        damaged = damaged_fields(info)
        if damaged:
            raise InstanceError(f"{path}: damaged ({', '.join(damaged)} not as loadkit writes them); "
                                f"loadkit target {cls.server} down --dir {path.parent} stops what it can find")
        return info

    @classmethod
    def from_state(cls, state_dir) -> "Instance | None":
        """The instance an earlier ``up`` left in `state_dir`, or None when there is none."""
        info = cls.read_info(state_dir)
        if info is None:
            return None
        return cls._restored(state_dir, info)

    @classmethod
    def salvage(cls, state_dir) -> "tuple[Instance | None, str | None]":
        """(instance, damage) for ``down``: the instance from whatever of instance.json is sound.

        `damage` says, in one line, what was damaged (None when nothing was). A file
        that is not an object still gives an instance, with nothing restored: the
        pid files in the state folder still lead to what it started.
        """
        try:
            info = read_instance(Path(state_dir).absolute())
        except ResultsError as error:
            return cls(state_dir), str(error)
        if info is None or info.get("server") != cls.server:
            return cls.from_state(state_dir), None  # none, or another server's folder: not ours to stop
        damaged = damaged_fields(info)
        damage = f"{instance_path(Path(state_dir).absolute())}: damaged ({', '.join(damaged)})" if damaged else None
        sound = {key: value for key, value in info.items() if _sound_field(key, value)}
        try:
            return cls._restored(state_dir, sound), damage
        except InstanceError as error:
            return cls(state_dir), str(error)

    @classmethod
    def _restored(cls, state_dir, info: dict) -> "Instance":
        instance = cls(state_dir, port=info.get("port") or 0)
        instance.started_at = info.get("started_at")
        try:
            instance._restore(info)
        except (TypeError, ValueError, KeyError, AttributeError) as error:  # a value of a field nobody checks
            raise InstanceError(f"{instance.info_path}: damaged ({type(error).__name__}: {error})") from None
        return instance

    def _prepare_state_dir(self) -> None:
        """An empty state folder: new, empty, or a stopped instance of the same server."""
        folder = self.state_dir
        if folder.exists() and not folder.is_dir():
            raise InstanceError(f"{folder} is not a folder")
        if folder.is_dir() and any(folder.iterdir()):
            previous = type(self).from_state(folder)
            if previous is None:
                raise InstanceError(f"{folder} is not empty and holds no {self.server} instance; choose another --dir")
            if previous.is_running():
                raise InstanceError(
                    f"{self.server} already runs in {folder}; stop it first: loadkit target {self.server} down --dir {folder}"
                )
            previous._stop(STOP_TIMEOUT)  # leftovers of a crashed run, such as a sink
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o755)  # servers' unprivileged processes read config and write mail below
        except OSError as error:
            raise InstanceError(f"cannot use {folder} as a state folder: {error.strerror}") from None
        self._write_info(running=False)

    def _write_info(self, running: bool) -> None:
        record = {
            "server": self.server,
            "running": running,
            "state_dir": str(self.state_dir),
            "port": self.port,
            "started_at": self.started_at,
            **self._describe(),
        }
        try:
            write_instance(self.state_dir, record)
        except ResultsError as error:
            raise InstanceError(str(error)) from None

    def path(self, *parts: str) -> Path:
        """A path inside the state folder."""
        return self.state_dir.joinpath(*parts)

    def make_dirs(self, *names: str, mode: int = 0o755) -> None:
        for name in names:
            folder = self.path(name)
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, mode)

    # -- for subclasses --------------------------------------------------------------

    def _check_installed(self) -> None:
        """Raise MissingPackages when the server's programs are missing."""

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self, timeout: float) -> None:
        raise NotImplementedError

    def _running(self) -> bool:
        raise NotImplementedError

    def _describe(self) -> dict:
        """Endpoints and paths, written to instance.json for other code to read."""
        return {}

    def _restore(self, info: dict) -> None:
        """Set attributes back from instance.json (`from_state`)."""
