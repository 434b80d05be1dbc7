"""Logging to stderr only (on stdio, stdout is the protocol), with every secret redacted from every line.

Two layers, so that no handler, ours or an application's, ever sees a secret:

- `install_redaction` (run by `add_secret`, so by every FloraClient, Toolkit and hosted auth policy) wraps the
  process's log record factory: each record of flora-mcp and of the libraries it drives (`REDACTED_LOGGERS`) is
  redacted as it is made, before any handler, filter or formatter of a library user's `logging.basicConfig` gets it;
- `configure_logging` (the CLI) also puts `RedactingFilter` on its stderr handler, for every other logger.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = ["BEARER_PATTERN", "KEY_PATTERN", "REDACTED", "REDACTED_LOGGERS", "RedactingFilter", "add_secret",
           "configure_logging", "install_redaction", "json_may_hide_secrets", "redact", "redact_record",
           "redact_value"]

REDACTED = "[redacted]"
T = TypeVar("T")

# Anything shaped like a FLORA key, and whatever follows `Bearer`, is hidden even if nobody registered it;
# registered secrets (bearer tokens, keys of other shapes) are kept in a bounded set, since a hosted server meets a
# new key with every user.
KEY_PATTERN = re.compile(r"\bsk_[A-Za-z0-9][A-Za-z0-9_-]{5,}")
BEARER_PATTERN = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/-]{6,}=*")
"""A bearer credential (RFC 6750's b64token) of six characters or more, as a header echoed back carries it."""
MAX_SECRETS = 1024
MIN_PREFIX = 8
"""A registered secret's first half, and at least this many characters of it, is hidden too: a truncated token
(`tok_3f9a1c...`, as many servers echo one back) still gives much of it away."""
REDACTED_LOGGERS = frozenset({"flora_mcp", "httpx", "httpcore", "mcp", "uvicorn", "starlette", "sse_starlette"})
"""Top-level logger names whose records are redacted as they are made: flora-mcp's and those of what it drives."""
MIN_SECRET = 6
"""Registered secrets are this long or longer: a shorter one would hide ordinary words."""
_SUSPECT = re.compile(r"sk_|(?i:bearer)")
"""What KEY_PATTERN and BEARER_PATTERN can only match around: a result's many strings skip both without it."""
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_-]")
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')
"""What `json.dumps(..., ensure_ascii=False)` writes other than as itself."""
_secrets: OrderedDict[str, tuple[str, bool]] = OrderedDict()
"""Every registered secret, oldest first, with the start of it that gives it away (`_prefix_length`) and whether JSON
writes that start otherwise than as itself (`json_may_hide_secrets`)."""
_MARK = "_flora_mcp_redacts"


def add_secret(secret: str | None) -> None:
    """Never let this value reach a log line (API keys, bearer tokens); installs the redaction on first use."""
    install_redaction()
    if not secret or len(secret) < MIN_SECRET:
        return
    prefix = secret[:_prefix_length(secret)]
    _secrets[secret] = prefix, _JSON_ESCAPED.search(prefix) is not None
    _secrets.move_to_end(secret)
    while len(_secrets) > MAX_SECRETS:
        _secrets.popitem(last=False)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every secret (or a long enough start of one) and every bearer credential replaced by a marker.

    Args:
        text: Any text bound for a log, an error message or a result.
        secrets: The values to hide; by default every one given to `add_secret`.

    Returns:
        The text, redacted.
    """
    if len(text) < MIN_SECRET and secrets is None:
        return text  # shorter than any registered secret and than what either pattern matches
    suspect = _SUSPECT.search(text) is not None
    if suspect:
        text = KEY_PATTERN.sub(REDACTED, text)  # first: a FLORA key that merely starts as a registered one goes whole
    spans: list[tuple[int, int]] = []
    pairs = ([(s, prefix) for s, (prefix, _) in list(_secrets.items())] if secrets is None
             else [(s, s[:_prefix_length(s)]) for s in secrets if s])
    for secret, prefix in pairs:
        if prefix in text:
            spans.extend(_occurrences(text, secret))
    if spans:
        text = _hide(text, spans)
    return BEARER_PATTERN.sub(rf"\g<1>{REDACTED}", text) if suspect else text


def _prefix_length(secret: str) -> int:
    """How much of the start of `secret` gives it away: half of it, at least MIN_PREFIX characters (or all)."""
    return min(len(secret), max(MIN_PREFIX, (len(secret) + 1) // 2))


def _occurrences(text: str, secret: str) -> list[tuple[int, int]]:
    """Where `secret`, or a long enough start of it, is in `text`: (start, end) of each, as long as it matches."""
    prefix = secret[:_prefix_length(secret)]
    found: list[tuple[int, int]] = []
    start = text.find(prefix)
    while start >= 0:
        end = start + len(prefix)
        while end - start < len(secret) and end < len(text) and text[end] == secret[end - start]:
            end += 1
        # A start of it cut short, not another token that shares it (`sk_live_...` keys share eight characters).
        if end - start == len(secret) or end == len(text) or not _TOKEN_CHAR.match(text[end]):
            found.append((start, end))
        start = text.find(prefix, start + 1)
    return found


def _hide(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the spans (of several secrets, which may overlap) replaced by one marker each run of them."""
    parts: list[str] = []
    done = 0
    for start, end in sorted(spans):
        if start < done:  # overlaps the run just hidden: widen it
            if end > done:
                done = end
            continue
        parts.extend((text[done:start], REDACTED))
        done = end
    parts.append(text[done:])
    return "".join(parts)


def redact_value(value: T) -> T:
    """`value` with `redact` applied to every string in it, through dicts, lists and tuples (keys included); `value`
    itself, unchanged, when no string in it can hold a secret."""
    if not isinstance(value, str) and _nothing_to_hide(value):
        return value
    return _redact_each(value)


def _redact_each(value: T) -> T:
    if isinstance(value, str):
        return redact(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {_redact_each(k): _redact_each(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list | tuple):
        return type(value)(_redact_each(v) for v in value)
    return value


def _nothing_to_hide(value: object) -> bool:
    """Whether no string in `value` holds a registered secret's start or either pattern's marker, decided on its JSON
    text in one pass instead of string by string (a tool result has about a hundred strings)."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except Exception:  # a key JSON cannot write, a cycle, an object whose str() fails: string by string
        return False
    return not json_may_hide_secrets(text)


def json_may_hide_secrets(text: str) -> bool:
    """Whether a JSON text (escaping no more than `json.dumps(ensure_ascii=False)` does) may hold a secret in one of
    its strings, so that its value must be redacted string by string; False means none of them holds any.

    Every string of the value is in the text as it is, but for the characters JSON escapes: a secret whose start has
    one of those always says True. Text that is no string of the value (a separator, a number) can only add a
    match, never hide one."""
    if _SUSPECT.search(text) is not None:
        return True
    return any(escapes or prefix in text for prefix, escapes in list(_secrets.values()))


def redact_record(record: logging.LogRecord) -> None:
    """Redact a record in place: its message with its arguments merged in, its traceback and its stack."""
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the format: logging would print both raw when emitting
        message = f"{record.msg} {record.args!r}"
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """Replaces every known secret in a record's message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops it."""
        redact_record(record)
        return True


def install_redaction() -> None:
    """Redact every record of `REDACTED_LOGGERS` as it is made, whatever handlers the application installed.

    A filter on the `flora_mcp` logger would not do: Python consults a logger's filters only for records logged on
    that very logger, not for those of its children, nor of httpx. The record factory sees them all. It wraps the
    factory in place (an application's own included) and is installed once.
    """
    current = logging.getLogRecordFactory()
    if getattr(current, _MARK, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        if record.name.partition(".")[0] in REDACTED_LOGGERS:
            redact_record(record)
        return record

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)


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
