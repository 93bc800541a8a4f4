"""The client's errors: one tree under loadkit's root, every raised public error exported (as httpx tests it)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import loadkit.smtp
from loadkit.errors import LoadkitError
from loadkit.smtp import SMTPError, SMTPNotSupportedError, SMTPReplyError, SMTPTransportError


def raised_error_classes() -> dict[str, type]:
    """Every exception class that loadkit.smtp's modules raise by name (``raise Name(...)``)."""
    found = {}
    for module_info in pkgutil.iter_modules(loadkit.smtp.__path__, "loadkit.smtp."):
        module = importlib.import_module(module_info.name)
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                name = node.exc.func.id
                error = getattr(module, name, None) or getattr(__builtins__, name, None)
                if isinstance(error, type) and issubclass(error, BaseException):
                    found[name] = error
    return found


def test_every_public_error_the_package_raises_is_exported():
    raised = raised_error_classes()
    ours = {name: error for name, error in raised.items() if error.__module__.startswith("loadkit.smtp")}

    assert {"SMTPNotSupportedError", "SMTPReplyError", "SMTPConnectError", "SMTPProtocolError"} <= set(ours)
    assert sorted(name for name in ours if name not in loadkit.smtp.__all__) == []
    for name in ours:
        assert getattr(loadkit.smtp, name) is ours[name]


def test_every_exported_error_is_a_loadkit_error():
    exported = [getattr(loadkit.smtp, name) for name in loadkit.smtp.__all__]
    errors = [item for item in exported if isinstance(item, type) and issubclass(item, BaseException)]

    assert len(errors) == 8
    assert all(issubclass(error, SMTPError) and issubclass(error, LoadkitError) for error in errors)


def test_not_supported_is_neither_a_transport_nor_a_reply_error():
    assert issubclass(SMTPNotSupportedError, SMTPError)
    assert not issubclass(SMTPNotSupportedError, (SMTPTransportError, SMTPReplyError))
    error = SMTPNotSupportedError("the server offers no DSN", "mail", "DSN")
    assert (repr(error), str(error), error.phase) == ("DSN not supported at MAIL", "the server offers no DSN", "mail")
