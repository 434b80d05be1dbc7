"""The verbs for people at a terminal: `techniques`, `describe TECHNIQUE`, `run TECHNIQUE key=value ...` and
`upload FILE ...`.

`run` goes through `Toolkit.call`, exactly as an MCP tool call does: the same validation, cost caps, uploads of local
files, retries, journal and result. A relative path is read from the current folder; files may come from it and from
the home folder (or FLORA_INPUT_DIRS). Tables and results go to stdout; progress, warnings and errors go to stderr, so
`--json` output can be piped; both pass the log redaction on the way out. `--download DIR` saves the outputs with the
code FLORA_OUTPUT_DIR uses (`flora_mcp.core.media_out`, through the fetch guard). `upload` prints the asset URL of
each file.

Exit codes:
    0: the command did what it was asked (`run`: the run completed, and every output was saved with --download).
    1: the run failed, FLORA or the network answered an error, the run was still going when flora-mcp stopped
       waiting, an output could not be saved, the catalog could not be loaded, or flora-mcp failed unexpectedly.
    2: invalid usage or arguments: an unknown technique, a malformed KEY=VALUE, inputs the technique's schema
       rejects, a call refused by FLORA_MAX_COST_PER_CALL / FLORA_SESSION_BUDGET, or a price the person did not
       accept (FLORA_CONFIRM_ABOVE: answered no at the y/N prompt, or no terminal to ask and no --yes). Nothing was
       submitted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from io import TextIOBase
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.to_thread
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

from flora_mcp.config import Settings
from flora_mcp.core.catalog import URL_TYPES, TechniqueTool, format_usd
from flora_mcp.core.confirm import Answer, Confirmation
from flora_mcp.core.media_out import save_outputs
from flora_mcp.core.results import OutputFile, ToolResult
from flora_mcp.logs import redact

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "download_outputs", "parse_inputs", "run_command"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """The command line cannot be run as given; the message says why."""


class _Redacted(TextIOBase):
    """A text stream whose every write passes the log redaction: all the human verbs print goes through one."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self._stream = stream

    @property
    def encoding(self) -> str:  # type: ignore[override]  # read-only here, as on the stream it wraps
        return getattr(self._stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


def _console(stream: IO[str]) -> Console:
    # Piped output keeps long URLs on one line rather than wrapping them at rich's default of 80 columns.
    wide = stream.isatty() or "COLUMNS" in os.environ
    return Console(file=_Redacted(stream), width=None if wide else 200, highlight=False)  # type: ignore[arg-type]


async def run_command(command: str, settings: Settings, args: argparse.Namespace) -> int:
    """Run one human verb and return the process exit code.

    Args:
        command: `techniques`, `describe` or `run`.
        settings: the settings from the environment and flags.
        args: the parsed command line (`sandbox`, and the verb's own arguments).

    Returns:
        EXIT_OK, EXIT_FAILED or EXIT_USAGE (see the module docstring).
    """
    from flora_mcp.cli.sandbox import settings_with_sandbox
    from flora_mcp.core.startup import open_toolkit

    out, err = _console(sys.stdout), _console(sys.stderr)
    if not settings.input_dirs:
        # A person at a terminal means a relative path from where they are; files may come from there or from home.
        folders = dict.fromkeys([str(Path.cwd()), str(Path.home())])
        settings = settings.model_copy(update={"input_dirs": os.pathsep.join(folders)})
    if command == "upload":
        return await _upload(settings, args, out, err)
    if command == "run":
        try:
            inputs = parse_inputs(args.inputs)
        except UsageError as exc:
            err.print(f"flora-mcp: {escape(str(exc))}")
            return EXIT_USAGE
        # A person at a terminal waits for the run, not for an agent's 60-second client limit.
        if "max_wait" not in settings.model_fields_set:
            settings = settings.model_copy(update={"max_wait": settings.run_timeout})
    async with settings_with_sandbox(settings, args.sandbox) as effective, open_toolkit(effective) as toolkit:
        if command == "techniques":
            out.print(techniques_table(list(toolkit.catalog.tools.values())))
            return EXIT_OK
        tool = toolkit.catalog.find(args.technique)
        if tool is None:
            err.print(f"flora-mcp: no technique matches {escape(repr(args.technique))}; "
                      "`flora-mcp techniques` lists them.")
            return EXIT_USAGE
        if command == "describe":
            describe(out, tool)
            return EXIT_OK
        result = await _call_with_progress(toolkit, tool, inputs, err, assume_yes=bool(getattr(args, "yes", False)))
        if result.error_code == "confirmation_unavailable":
            err.print("flora-mcp: stdin is not a terminal, so nobody can be asked to accept the price; pass --yes to "
                      "accept it.")
        saved: list[Path] = []
        download_failed = False
        if args.download and result.status == "completed":
            saved, download_failed = await download_outputs(result, Path(args.download),
                                                            flora_base_url=effective.base_url, err=err)
        if args.json:
            body = {"tool": result.tool, **result.structured()}
            if args.download:
                body["saved"] = [str(p) for p in saved]
            _Redacted(sys.stdout).write(json.dumps(body, indent=2) + "\n")
        else:
            show_result(out if not result.is_error else err, result, saved)
        if download_failed:
            return EXIT_FAILED
        return exit_code(result)


_USAGE_CODES = frozenset({"invalid_arguments", "cost_cap_exceeded", "unknown_tool", "unknown_technique",
                          "confirmation_unavailable"})


async def _upload(settings: Settings, args: argparse.Namespace, out: Console, err: Console) -> int:
    """`flora-mcp upload FILE...`: each file as a FLORA asset, its URL printed (what leaves the machine, listed)."""
    from flora_mcp.api.errors import FloraError, UploadError
    from flora_mcp.cli.sandbox import settings_with_sandbox
    from flora_mcp.core.toolkit import Toolkit

    async with settings_with_sandbox(settings, args.sandbox) as effective:
        toolkit = Toolkit(effective)
        try:
            columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
            with Progress(*columns, console=err, transient=True) as bar:
                task = bar.add_task("uploading", total=100.0)

                async def progress(percent: float, message: str) -> None:
                    bar.update(task, completed=percent, description=escape(message))

                uploads = await toolkit.upload_files(args.files, progress=progress)
        except FloraError as exc:
            err.print(f"flora-mcp: {escape(exc.message)}")
            return EXIT_USAGE if isinstance(exc, UploadError) and not exc.sent else EXIT_FAILED
        finally:
            await toolkit.aclose()
    if args.json:
        _Redacted(sys.stdout).write(json.dumps([u.model_dump() for u in uploads], indent=2) + "\n")
        return EXIT_OK
    for upload in uploads:
        again = " (already uploaded)" if upload.reused else ""
        err.print(f"{escape(upload.source)}: {upload.size_bytes} bytes, {upload.content_type}, asset "
                  f"{upload.asset_id}{again}")
        out.print(upload.url, soft_wrap=True)
    return EXIT_OK


def exit_code(result: ToolResult) -> int:
    """0 for a completed run, 2 for a call refused as given (or declined) before anything was sent, 1 otherwise."""
    if result.status == "completed":
        return EXIT_OK
    if result.status == "declined":
        return EXIT_USAGE
    if result.status == "invalid" and result.error_code in _USAGE_CODES:
        return EXIT_USAGE
    return EXIT_FAILED


def parse_inputs(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs as tool arguments; a key given more than once becomes a list of its values.

    Raises:
        UsageError: a pair without `=` or with an empty key.
    """
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"inputs are KEY=VALUE, got {pair!r}")
        if key not in inputs:
            inputs[key] = value
        elif isinstance(inputs[key], list):
            inputs[key].append(value)
        else:
            inputs[key] = [inputs[key], value]
    return inputs


# techniques and describe -------------------------------------------------------------------------------------------


def _input_summary(tool: TechniqueTool) -> str:
    parts = []
    for io in tool.technique.inputs or []:
        kind = "URL" if io.type in URL_TYPES else io.type
        parts.append(f"{io.id}{'?' if io.optional else ''}{'...' if io.allow_multiple else ''} ({kind})")
    return ", ".join(parts) or "none"


def techniques_table(tools: list[TechniqueTool]) -> Table:
    """Every technique: name, tool name, inputs (`?` optional, `...` several values) and price per run."""
    table = Table(title=f"{len(tools)} FLORA techniques", caption="KEY? optional, KEY... several values; "
                  "`flora-mcp describe TOOL` for details.")
    table.add_column("Technique")
    table.add_column("Tool", no_wrap=True)
    table.add_column("Inputs")
    table.add_column("Cost", justify="right", no_wrap=True)
    for tool in sorted(tools, key=lambda t: (t.technique.name or t.name).lower()):
        table.add_row(escape(tool.technique.name or tool.name), tool.name, escape(_input_summary(tool)),
                      format_usd(tool.technique.run_cost))
    return table


def describe(console: Console, tool: TechniqueTool) -> None:
    """One technique: what it does, its price, its inputs and outputs, its JSON Schema and an example command."""
    technique = tool.technique
    facts = Table.grid(padding=(0, 2))
    facts.add_row("Tool", tool.name)
    facts.add_row("Slug", technique.slug or "-")
    facts.add_row("Technique id", technique.technique_id)
    facts.add_row("Cost", f"{format_usd(technique.run_cost)} per run")
    console.print(Panel(facts, title=escape(technique.name or tool.name),
                        subtitle=escape(technique.description or ""), title_align="left", expand=False))
    inputs = Table(title="Inputs", title_justify="left")
    for column in ("Input", "Type", "Required", "Several", "Description"):
        inputs.add_column(column)
    properties = tool.input_schema.get("properties", {})
    for io in technique.inputs or []:
        inputs.add_row(io.id, io.type, "no" if io.optional else "yes", "yes" if io.allow_multiple else "no",
                       escape(properties.get(io.id, {}).get("description", "")))
    console.print(inputs)
    if technique.outputs:
        console.print("Outputs: " + escape(", ".join(f"{o.name or o.id} ({o.type})" for o in technique.outputs)))
    console.print("Input schema:")
    console.print(Syntax(json.dumps(tool.input_schema, indent=2), "json", background_color="default"))
    example = " ".join(f"{io.id}={'URL' if io.type in URL_TYPES else '...'}"
                       for io in technique.inputs or [] if not io.optional)
    console.print(f"Run it: flora-mcp run {tool.name} {escape(example)}".rstrip())


# run ------------------------------------------------------------------------------------------------------------


async def _call_with_progress(toolkit: Any, tool: TechniqueTool, inputs: dict[str, Any], err: Console, *,
                              assume_yes: bool) -> ToolResult:
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(f"{tool.name}: starting", total=100.0)

        async def progress(percent: float, message: str) -> None:
            bar.update(task, completed=percent, description=f"{tool.name}: {escape(message)}")

        async def confirm(confirmation: Confirmation) -> Answer:
            if assume_yes:
                return "accept"
            if not sys.stdin.isatty():
                return "unavailable"
            bar.stop()  # the prompt, not a spinner, holds the terminal while the person decides
            try:
                return await anyio.to_thread.run_sync(ask_at_terminal, err, confirmation)
            finally:
                bar.start()

        result: ToolResult = await toolkit.call(tool.name, inputs, progress=progress, confirm=confirm)
        if result.status == "completed":
            bar.update(task, completed=100.0, description=f"{tool.name}: completed")
    return result


def ask_at_terminal(console: Console, confirmation: Confirmation) -> Answer:
    """The y/N prompt (no by default); end of input cancels."""
    console.print(escape(confirmation.message()))
    try:
        reply = console.input(escape(f"{confirmation.question} [y/N] "))
    except (EOFError, KeyboardInterrupt):
        return "cancel"
    return "accept" if reply.strip().lower() in ("y", "yes") else "decline"


def show_result(console: Console, result: ToolResult, saved: list[Path]) -> None:
    """The result for a person: status, outputs (and where they were saved), cost, and what to do next."""
    name = result.technique.name if result.technique else result.tool
    if result.status == "completed":
        runs = f"{len(result.runs)} runs" if result.runs else f"run {result.run_id}"
        console.print(f"{escape(name)}: {runs} completed.")
    else:
        console.print(f"[bold]{escape(name)}: {result.status}[/bold]"
                      + (f" ({escape(result.error_code)})" if result.error_code else "")
                      + (f": {escape(result.error_message)}" if result.error_message else ""))
        if result.run_id:
            console.print(f"Run id: {result.run_id}")
    for field in result.error_fields:
        console.print(f"  - {escape(field.field)}: {escape(field.message)}")
    for upload in result.uploads:
        how = "already uploaded as" if upload.reused else "uploaded as"
        console.print(f"Input {escape(upload.input)}: {escape(upload.source)} {how} {escape(upload.url)}")
    if result.outputs:
        table = Table("Output", "Type", "URL")
        for output in result.outputs:
            table.add_row(escape(output.output_id), output.type, escape(output.url))
        console.print(table)
    for path in saved or [Path(o.path) for o in result.outputs if o.path]:
        console.print(f"Saved {escape(str(path))}")
    if result.charged_cost is not None:
        console.print(f"Charged: {format_usd(result.charged_cost)}")
    if result.session_spend is not None:
        console.print(f"Spent by this command: {format_usd(result.session_spend)}")
    if result.next_step and result.status != "completed":
        console.print(f"Next: {escape(result.next_step)}")


async def download_outputs(result: ToolResult, directory: Path, *, flora_base_url: str,
                           err: Console) -> tuple[list[Path], bool]:
    """Save every output of a result into `directory` (made if missing), never overwriting a file: the code that
    FLORA_OUTPUT_DIR uses (`flora_mcp.core.media_out`), so the names are `{tool}-{run_id}-{output_id}.{ext}`.

    Returns:
        The files saved, and whether any output could not be saved.
    """
    runs = result.runs or [result]
    kept: dict[tuple[str | None, str], Path] = {}
    todo: list[tuple[str | None, list[OutputFile]]] = []
    for run in runs:
        for output in run.outputs:  # already saved there under FLORA_OUTPUT_DIR: not a second copy
            if output.path and Path(output.path).parent.resolve() == directory.resolve():
                kept[(run.run_id, output.output_id)] = Path(output.path)
        todo.append((run.run_id, [o for o in run.outputs if (run.run_id, o.output_id) not in kept]))
    saved, failed = await save_outputs(todo, directory, tool=result.tool, flora_base_url=flora_base_url)
    for output_id, reason in failed:
        err.print(f"flora-mcp: output {escape(output_id)} not saved: {escape(reason)}")
    new = {(item.run_id, item.output_id): item.path for item in saved}
    paths = [kept.get((run.run_id, o.output_id)) or new.get((run.run_id, o.output_id)) for run in runs
             for o in run.outputs]
    return [path for path in paths if path is not None], bool(failed)
