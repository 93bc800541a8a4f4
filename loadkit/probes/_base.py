"""What every probe is, and the ``--probe NAME[=ARGUMENT]`` spelling."""

from __future__ import annotations

from loadkit.errors import LoadkitError

NAMES = ("postfix", "apache", "host")
DEFAULT_POSTFIX_STATE = "reports/instances/postfix"


class ProbeError(LoadkitError):
    """A probe could not read its source (one line for people)."""


def parse_probe_spec(text: str) -> tuple[str, str | None]:
    """``postfix=DIR`` -> ("postfix", "DIR"); ``host`` -> ("host", None). ProbeError for unknown names."""
    name, equals, argument = text.partition("=")
    name = name.strip().lower()
    if name not in NAMES:
        raise ProbeError(f"--probe {text}: unknown probe; use postfix[=STATE_DIR], apache=STATUS_URL or host")
    if name == "apache" and not argument:
        raise ProbeError("--probe apache needs its mod_status URL: apache=http://127.0.0.1:8080/server-status?auto")
    if name == "host" and equals:
        raise ProbeError(f"--probe {text}: the host probe takes no argument")
    return name, argument or None
