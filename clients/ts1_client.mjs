#!/usr/bin/env node
// A real MCP 2025-11-25 client built on @modelcontextprotocol/sdk 1.x (the TypeScript SDK's v1 line): the
// confirmation as form elicitation, and the 2025-11-25 tasks through the SDK's experimental tasks client
// (`client.experimental.tasks`), over stdio or streamable HTTP. Prints one JSON object of what the client saw.

import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const USAGE = `usage:
  node clients/ts1_client.mjs SCENARIO [options] -- COMMAND [ARGS...]       stdio: spawn the server
  node clients/ts1_client.mjs SCENARIO [options] --url http://HOST:PORT/mcp   streamable HTTP

scenarios:
  confirm   call --tool; the server asks the person (elicitation/create, form) and they answer --answer
  task      call --tool as a task (callToolStream with task: {ttl}); every message the stream yields (a confirmation
            is asked inside tasks/result and answered with --answer); --cancel: tasks/cancel once the task exists,
            then tasks/get once more

options:
  --env KEY=VALUE      environment for a stdio server, on top of the SDK's safe defaults (repeatable)
  --header "N: V"      HTTP header for every request (repeatable)
  --tool NAME          the tool to call (default qr-code-generator)
  --arg KEY=VALUE      tool argument (repeatable)
  --answer A           accept | accept-no (the form sent back with confirm=false) | decline | cancel
  --no-elicitation     do not declare elicitation (a client that cannot ask the person)
  --cancel             (task) cancel the task once it exists
  --timeout MS         request timeout (default 60000)

Exit status: 0 when the scenario ran to its end (whatever the server answered), 1 when the client failed on the way,
2 for bad usage.
`;

function usage(message) {
  process.stderr.write(`ts1_client: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function pairs(values, separator) {
  const out = {};
  for (const item of values ?? []) {
    const at = item.indexOf(separator);
    if (at < 1) usage(`expected KEY${separator}VALUE, got ${JSON.stringify(item)}`);
    out[item.slice(0, at).trim()] = item.slice(at + separator.length).trim();
  }
  return out;
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: "string" },
      env: { type: "string", multiple: true },
      header: { type: "string", multiple: true },
      tool: { type: "string", default: "qr-code-generator" },
      arg: { type: "string", multiple: true },
      answer: { type: "string", default: "accept" },
      "no-elicitation": { type: "boolean", default: false },
      cancel: { type: "boolean", default: false },
      timeout: { type: "string", default: "60000" },
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
const [scenario, ...command] = positionals;
if (!["confirm", "task"].includes(scenario)) usage("the first argument must be confirm or task");
if (!opts.url && command.length === 0) usage("give --url URL or -- COMMAND [ARGS...]");
const ANSWERS = {
  accept: { action: "accept", content: { confirm: true } },
  "accept-no": { action: "accept", content: { confirm: false } },
  decline: { action: "decline" },
  cancel: { action: "cancel" },
};
const answer = ANSWERS[opts.answer] ?? usage(`--answer must be one of ${Object.keys(ANSWERS).join(", ")}`);
const timeout = Number.parseInt(opts.timeout, 10);
const toolArgs = pairs(opts.arg, "=");

function makeTransport() {
  if (opts.url) {
    return new StreamableHTTPClientTransport(new URL(opts.url), { requestInit: { headers: pairs(opts.header, ":") } });
  }
  const [file, ...args] = command;
  return new StdioClientTransport({ command: file, args, env: pairs(opts.env, "="), stderr: "inherit" });
}

function describeError(error) {
  return { code: error?.code ?? null, message: String(error?.message ?? error) };
}

function summary(result) {
  if (!result) return result;
  const blocks = (result.content ?? []).map((block) => {
    if (block.type === "image" || block.type === "audio") {
      const { data, ...rest } = block;
      return { ...rest, data_length: data?.length ?? 0 };
    }
    return block;
  });
  return { isError: result.isError ?? false, content: blocks, structuredContent: result.structuredContent ?? null,
           _meta: result._meta ?? null };
}

function view(task) {
  return { taskId: task.taskId, status: task.status, statusMessage: task.statusMessage ?? null,
           pollInterval: task.pollInterval ?? null, ttl: task.ttl ?? null };
}

const report = { scenario, transport: opts.url ? "streamable-http" : "stdio", shown: [], client_errors: [] };
const capabilities = opts["no-elicitation"] ? {} : { elicitation: { form: {} } };
const client = new Client({ name: "flora-mcp-ts1-client", version: "1.0.0" }, { capabilities });
client.onerror = (error) => report.client_errors.push(String(error?.message ?? error));
if (!opts["no-elicitation"]) {
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    const { message, requestedSchema, mode, _meta } = request.params;
    report.shown.push({ message, requestedSchema, mode: mode ?? null, _meta: _meta ?? null });
    return answer;
  });
}

async function confirm() {
  report.result = summary(await client.callTool({ name: opts.tool, arguments: toolArgs }, CallToolResultSchema,
                                                { timeout }));
}

async function task() {
  const tasks = client.experimental.tasks;
  const messages = [];
  const stream = tasks.callToolStream({ name: opts.tool, arguments: toolArgs }, CallToolResultSchema,
                                      { timeout, task: { ttl: 60_000 } });
  for await (const message of stream) {
    if (message.type === "result") messages.push({ type: "result", result: summary(message.result) });
    else if (message.type === "error") messages.push({ type: "error", error: describeError(message.error) });
    else messages.push({ type: message.type, task: view(message.task) });
    if (opts.cancel && message.type === "taskCreated") {
      const { taskId } = message.task;
      try {
        report.cancel = view(await tasks.cancelTask(taskId, { timeout }));
      } catch (error) {
        report.cancel = { error: describeError(error) };
      }
      report.after_cancel = view(await tasks.getTask(taskId, { timeout }));
      break;
    }
  }
  report.messages = messages;
}

let ok = true;
try {
  await client.connect(makeTransport());
  report.server = client.getServerVersion()?.name ?? null;
  report.server_tasks = client.getServerCapabilities()?.tasks ?? null;
  await (scenario === "confirm" ? confirm() : task());
} catch (error) {
  report.error = describeError(error);
  ok = false;
} finally {
  await client.close().catch(() => {});
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exitCode = ok ? 0 : 1;
