#!/usr/bin/env node
// A real MCP client built on @modelcontextprotocol/sdk (the TypeScript SDK): connect over stdio or streamable HTTP,
// list the tools, optionally call one with a progress handler, and print one JSON object of what it saw on stdout.

import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";

function pairs(values, separator) {
  const out = {};
  for (const item of values ?? []) {
    const at = item.indexOf(separator);
    if (at < 1) throw new Error(`expected KEY${separator}VALUE, got ${JSON.stringify(item)}`);
    out[item.slice(0, at).trim()] = item.slice(at + separator.length).trim();
  }
  return out;
}

const USAGE = `usage:
  node clients/sdk_client.mjs [options] -- COMMAND [ARGS...]       stdio: spawn the server
  node clients/sdk_client.mjs [options] --url http://HOST:PORT/mcp   streamable HTTP

options:
  --env KEY=VALUE      environment for a stdio server, on top of the SDK's safe defaults (repeatable)
  --header "N: V"      HTTP header for every request (repeatable)
  --tool NAME          call this tool after listing
  --arg KEY=VALUE      tool argument (repeatable)
  --timeout MS         the request timeout of the call (the SDK's default is 60000)
  --reset-timeout-on-progress
                       restart the timeout on every progress notification
  --control            also make the same call at the same time WITHOUT resetting the timeout, to show that the
                       timeout really is shorter than the run (it should fail with RequestTimeout, -32001)

Prints one JSON object: the tools, and for a call its result, each progress notification with the milliseconds
since the call began (at_ms), and elapsed_ms. Exit status: 0 when listing and the call (if any) succeeded with
isError false; 1 otherwise; 2 for bad usage.
`;

function usage(message) {
  process.stderr.write(`sdk_client: ${message}\n\n${USAGE}`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: "string" },
      env: { type: "string", multiple: true },
      header: { type: "string", multiple: true },
      tool: { type: "string" },
      arg: { type: "string", multiple: true },
      timeout: { type: "string", default: "60000" },
      "reset-timeout-on-progress": { type: "boolean", default: false },
      control: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
} catch (error) {
  usage(error.message);
}
const { values: opts, positionals } = parsed;
if (opts.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (!opts.url && positionals.length === 0) usage("give --url URL or -- COMMAND [ARGS...]");
const timeout = Number.parseInt(opts.timeout, 10);
if (!(timeout > 0)) usage(`--timeout must be a positive number of milliseconds, got ${opts.timeout}`);

function makeTransport() {
  if (opts.url) {
    return new StreamableHTTPClientTransport(new URL(opts.url), {
      requestInit: { headers: pairs(opts.header, ":") },
    });
  }
  const [command, ...args] = positionals;
  // Only the SDK's default variables (HOME, PATH, ...) plus --env: what a real client hands a server it spawns.
  return new StdioClientTransport({ command, args, env: pairs(opts.env, "="), stderr: "inherit" });
}

function describeError(error) {
  return { code: error?.code ?? null, message: String(error?.message ?? error) };
}

async function call(client, name, args, resetTimeoutOnProgress) {
  const progress = [];
  const started = performance.now();
  try {
    const result = await client.callTool({ name, arguments: args }, CallToolResultSchema, {
      timeout,
      resetTimeoutOnProgress,
      onprogress: (p) => progress.push({ ...p, at_ms: Math.round(performance.now() - started) }),
    });
    return { ok: result.isError !== true, result, progress, elapsed_ms: Math.round(performance.now() - started) };
  } catch (error) {
    return { ok: false, error: describeError(error), progress, elapsed_ms: Math.round(performance.now() - started) };
  }
}

const report = { transport: opts.url ? "streamable-http" : "stdio", timeout_ms: timeout };
const client = new Client({ name: "flora-mcp-sdk-client", version: "1.0.0" });
// Errors the SDK reports out of band, e.g. a progress notification for a call that has already returned: the SDK
// runs notification handlers a microtask late, so a last progress that arrives in the same read as the result is
// dropped with "unknown token".
report.client_errors = [];
client.onerror = (error) => report.client_errors.push(String(error?.message ?? error));
let ok = true;
try {
  await client.connect(makeTransport());
  report.server = client.getServerVersion();
  report.tools = (await client.listTools()).tools.map((tool) => tool.name);
  if (opts.tool) {
    const args = pairs(opts.arg, "=");
    const calls = [call(client, opts.tool, args, opts["reset-timeout-on-progress"])];
    if (opts.control) calls.push(call(client, opts.tool, args, false));
    const [main, control] = await Promise.all(calls);
    report.call = { reset_timeout_on_progress: opts["reset-timeout-on-progress"], ...main };
    if (control) report.control = { reset_timeout_on_progress: false, ...control };
    ok = main.ok;
  }
} catch (error) {
  report.error = describeError(error);
  ok = false;
} finally {
  await client.close().catch(() => {});
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exitCode = ok ? 0 : 1;
