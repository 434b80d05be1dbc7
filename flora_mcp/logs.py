"""Logging to stderr only (on stdio, stdout is the protocol), with every secret redacted from every line."""

from __future__ import annotations

import logging
import re
import sys
from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["REDACTED", "RedactingFilter", "configure_logging", "redact"]

REDACTED = "[redacted]"

# Anything shaped like a FLORA key is hidden even if nobody registered it; registered secrets (bearer tokens, keys
# of other shapes) are kept in a bounded set, since a hosted server meets a new key with every user.
KEY_PATTERN = re.compile(r"\bsk_[A-Za-z0-9][A-Za-z0-9_-]{5,}")
MAX_SECRETS = 1024
_secrets: OrderedDict[str, None] = OrderedDict()


def add_secret(secret: str | None) -> None:
    """Never let this value reach a log line (API keys, bearer tokens)."""
    if not secret or len(secret) < 6:
        return
    _secrets[secret] = None
    _secrets.move_to_end(secret)
    while len(_secrets) > MAX_SECRETS:
        _secrets.popitem(last=False)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every secret replaced by a marker.

    Args:
        text: Any text bound for a log, an error message or a result.
        secrets: The values to hide; by default every one given to `add_secret`.

    Returns:
        The text, redacted.
    """
    for secret in secrets if secrets is not None else list(_secrets):
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return KEY_PATTERN.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Replaces every known secret in a record's message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops it."""
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def configure_logging(level: str = "INFO") -> None:
    """Send flora-mcp's and the libraries' logs to stderr, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("flora_mcp").setLevel(level)
    # httpx logs every request URL at INFO; keep it quiet unless debugging.
    logging.getLogger("httpx").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
