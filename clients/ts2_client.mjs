#!/usr/bin/env node
// A real MCP 2026-07-28 client built on @modelcontextprotocol/client (the TypeScript SDK v2) and, for tasks,
// @modelcontextprotocol/ext-tasks: connect over stdio or streamable HTTP with version negotiation `auto`, run one
// scenario (a sub-command), and print one JSON object of what the client saw on stdout.

import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/client";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { createTaskSessionFromClient } from "@modelcontextprotocol/ext-tasks/client";

const USAGE = `usage:
  node clients/ts2_client.mjs SCENARIO [options] -- COMMAND [ARGS...]       stdio: spawn the server
  node clients/ts2_client.mjs SCENARIO [options] --url http://HOST:PORT/mcp   streamable HTTP

scenarios:
  call           discover, list the tools, call --tool with --arg (what the result holds)
  confirm        call --tool; the person answers the confirmation with --answer (inside input_required rounds)
  state          the rounds by hand: the raw input_required, a tampered requestState, the genuine retry, a replay
  task           ext-tasks: call --tool; a long run comes back as a task; tasks/get until it ends (--cancel: cancel
                 it as soon as it is a task, then look at it once more)
  task-confirm   ext-tasks: call --tool that needs confirmation; the task waits in input_required until the person
                 answers with --answer

options:
  --env KEY=VALUE      environment for a stdio server, on top of the SDK's safe defaults (repeatable)
  --header "N: V"      HTTP header for every request (repeatable)
  --tool NAME          the tool to call (default qr-code-generator)
  --arg KEY=VALUE      tool argument (repeatable)
  --answer A           accept | accept-no (the form sent back with confirm=false) | decline | cancel
  --cancel             (task) cancel the task once it exists
  --max-rounds N       the client's inputRequired.maxRounds (its default is 10)
  --no-elicitation     declare no elicitation and set no handler for it (a client that cannot ask the person)
  --timeout MS         request timeout (default 60000)

Prints one JSON object. Exit status: 0 when the scenario ran to its end (whatever the server answered), 1 when the
client failed on the way, 2 for bad usage.
`;

function usage(message) {
  process.stderr.write(`ts2_client: ${message}\n\n${USAGE}`);
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
      cancel: { type: "boolean", default: false },
      "no-elicitation": { type: "boolean", default: false },
      "max-rounds": { type: "string" },
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
const SCENARIOS = ["call", "confirm", "state", "task", "task-confirm"];
if (!SCENARIOS.includes(scenario)) usage(`the first argument must be one of ${SCENARIOS.join(", ")}`);
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

const INFO = { name: "flora-mcp-ts2-client", version: "1.0.0" };
const CAPABILITIES = opts["no-elicitation"] ? {} : { elicitation: { form: {} } };

function makeTransport() {
  if (opts.url) {
    return new StreamableHTTPClientTransport(new URL(opts.url), { requestInit: { headers: pairs(opts.header, ":") } });
  }
  const [file, ...args] = command;
  return new StdioClientTransport({ command: file, args, env: pairs(opts.env, "="), stderr: "inherit" });
}

function describeError(error) {
  return { name: error?.constructor?.name ?? null, code: error?.code ?? null, message: String(error?.message ?? error) };
}

/** What a client can use of a result: its blocks (images without their bytes), structuredContent, isError. */
function summary(result) {
  if (!result) return result;
  const blocks = (result.content ?? []).map((block) => {
    if (block.type === "image" || block.type === "audio") {
      const { data, ...rest } = block;
      return { ...rest, data_length: data?.length ?? 0 };
    }
    return block;
  });
  return { resultType: result.resultType ?? null, isError: result.isError ?? false, content: blocks,
           structuredContent: result.structuredContent ?? null };
}

const report = { scenario, transport: opts.url ? "streamable-http" : "stdio" };
// The person at the screen: answers every confirmation with --answer, and keeps what it was shown.
const shown = [];
function person(params, how) {
  shown.push({ how, message: params.message, requestedSchema: params.requestedSchema, mode: params.mode ?? null });
  return answer;
}

async function connect(options = {}) {
  const client = new Client(INFO, { versionNegotiation: { mode: "auto" }, capabilities: CAPABILITIES, ...options });
  if (!opts["no-elicitation"]) {
    client.setRequestHandler("elicitation/create", async (request) => person(request.params, "elicitation/create"));
  }
  report.client_errors = [];
  client.onerror = (error) => report.client_errors.push(String(error?.message ?? error));
  const transport = makeTransport();
  await client.connect(transport, { timeout });
  report.era = client.getProtocolEra();
  report.protocol_version = client.getNegotiatedProtocolVersion();
  const server = client.getServerVersion();
  report.server = server && { ...server, icons: (server.icons ?? []).map((icon) => icon.mimeType) };
  return { client, transport };
}

// Scenarios -------------------------------------------------------------------------------------------------------

async function call(client) {
  const discovered = client.getDiscoverResult();
  report.discover = discovered && {
    supportedVersions: discovered.supportedVersions, capabilities: discovered.capabilities,
    instructions: discovered.instructions ?? null, ttlMs: discovered.ttlMs ?? null,
    cacheScope: discovered.cacheScope ?? null,
    serverInfo: discovered._meta?.["io.modelcontextprotocol/serverInfo"]?.name ?? null,
  };
  const listed = await client.listTools(undefined, { timeout });
  report.tools = listed.tools.map((tool) => tool.name);
  report.tools_cache = { ttlMs: listed.ttlMs ?? null, cacheScope: listed.cacheScope ?? null };
  report.result = summary(await client.callTool({ name: opts.tool, arguments: toolArgs }, { timeout }));
}

async function confirm(client) {
  report.result = summary(await client.callTool({ name: opts.tool, arguments: toolArgs }, { timeout }));
}

/** The error a request ends in, or its result when it does not fail. */
async function outcome(promise) {
  try {
    return { ok: true, result: summary(await promise) };
  } catch (error) {
    return { ok: false, error: describeError(error) };
  }
}

function tampered(state) {
  const last = state.at(-5) === "A" ? "B" : "A";
  return `${state.slice(0, -5)}${last}${state.slice(-4)}`;
}

async function state(client) {
  const round = (extra) => client.callTool({ name: opts.tool, arguments: toolArgs, ...extra },
                                           { timeout, allowInputRequired: true });
  const first = await round({});
  const [key, request] = Object.entries(first.inputRequests ?? {})[0] ?? [];
  report.first = { resultType: first.resultType ?? null, inputKeys: Object.keys(first.inputRequests ?? {}),
                   method: request?.method ?? null, message: request?.params?.message ?? null,
                   requestState: first.requestState ?? null };
  if (!key || typeof first.requestState !== "string") return;
  const responses = { [key]: person(request.params, "by hand") };
  report.tampered = await outcome(round({ inputResponses: responses, requestState: tampered(first.requestState) }));
  report.other_arguments = await outcome(client.callTool(
    { name: opts.tool, arguments: { ...toolArgs, content: `${toolArgs.content ?? ""} and more` },
      inputResponses: responses, requestState: first.requestState }, { timeout, allowInputRequired: true }));
  report.genuine = await outcome(round({ inputResponses: responses, requestState: first.requestState }));
  report.replayed = await outcome(round({ inputResponses: responses, requestState: first.requestState }));
}

/**
 * The host's request coordinator that ext-tasks needs on 2026-07-28 (`rawDispatch`): the SDK Client's codecs know
 * no `resultType: "task"` and no `tasks/*`, so these requests go to the transport under ids of our own, and their
 * responses are taken off the transport before the Client sees them.
 */
function rawDispatcher(transport) {
  const pending = new Map();
  let next = 0;
  const clientHandler = transport.onmessage;
  transport.onmessage = (message, extra) => {
    const waiting = message && !("method" in message) ? pending.get(message.id) : undefined;
    if (!waiting) return clientHandler?.call(transport, message, extra);
    pending.delete(message.id);
    waiting(message.error ? { kind: "error", error: message.error } : { kind: "result", result: message.result });
  };
  report.raw = [];
  return async (request, options = {}) => {
    const id = `ext-tasks-${++next}`;
    const answered = new Promise((resolve) => pending.set(id, resolve));
    const headers = Object.fromEntries(Object.entries(options.context?.headers ?? {})
      .filter(([name]) => name.toLowerCase() !== "mcp-name"));  // the transport derives it from the body
    await transport.send({ jsonrpc: "2.0", id, ...request }, { headers });
    const response = await answered;
    report.raw.push({ method: request.method, kind: response.kind,
                      resultType: response.result?.resultType ?? null, status: response.result?.status ?? null,
                      code: response.error?.code ?? null });
    return response;
  };
}

function taskSession(client, transport) {
  return createTaskSessionFromClient(client, {
    endpointId: "flora-mcp-ts2-client",
    rawDispatch: rawDispatcher(transport),
    v2RequestFraming: { protocolVersion: client.getNegotiatedProtocolVersion(), clientInfo: INFO,
                        clientCapabilities: CAPABILITIES },
    onInputRequest: async (request, context) => {
      const given = person(request.params, `${request.kind} via ${context.delivery}`);
      shown.at(-1).taskId = context.taskId ?? null;
      return given;
    },
    onError: (error) => report.client_errors.push(`ext-tasks: ${error.message}`),
  });
}

function view(task) {
  return task && { taskId: task.taskId, status: task.status, statusMessage: task.statusMessage ?? null,
                   pollIntervalMs: task.suggestedPollIntervalMs ?? null, retentionMs: task.retentionMs ?? null };
}

/** A task outcome without the raw copy of the task: its status, the result's summary, the error's message. */
function ended(outcome) {
  return { status: outcome.status, result: summary(outcome.result), task: view(outcome.task),
           error: outcome.error ? describeError(outcome.error) : null };
}

async function task(client, transport) {
  const session = taskSession(client, transport);
  try {
    report.task_capabilities = session.capabilities;
    const execution = await session.callTool(opts.tool, toolArgs, { requestTimeoutMs: timeout });
    report.kind = execution.kind;
    if (execution.kind !== "task") {
      report.outcome = ended(await execution.result());
      return;
    }
    const controller = session.task(execution.handle.taskId);
    const snapshots = [view(await controller.snapshot())];
    if (opts.cancel) {
      report.cancel = await outcome(execution.cancel());
      snapshots.push(view(await controller.snapshot()));
      report.outcome = ended(await execution.result());
      report.cancel_again = await outcome(controller.cancel());
    } else {
      // Our own tasks/get loop, faster than the server's pollIntervalMs hint: the execution stops driving (detach
      // never cancels), the controller looks until the task ends.
      await execution.detach();
      while (!["completed", "failed", "cancelled"].includes(snapshots.at(-1).status)) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        snapshots.push(view(await controller.snapshot()));
      }
      report.outcome = ended(await controller.result());
    }
    report.snapshots = snapshots;
  } finally {
    await session.close();
  }
}

async function taskConfirm(client, transport) {
  const session = taskSession(client, transport);
  try {
    const execution = await session.callTool(opts.tool, toolArgs, { requestTimeoutMs: timeout });
    report.kind = execution.kind;
    const events = [];
    const { outcome: settled } = await execution.settle({ onEvent: (event) => {
      if (event.type === "task") events.push(view(event.task));
    } });
    report.events = events;
    report.outcome = ended(settled);
  } finally {
    await session.close();
  }
}

const RUN = { call, confirm, state, task, "task-confirm": taskConfirm };
let client;
let ok = true;
try {
  const inputRequired = scenario === "state" ? { autoFulfill: false } : {};
  if (opts["max-rounds"] !== undefined) inputRequired.maxRounds = Number.parseInt(opts["max-rounds"], 10);
  const connected = await connect({ inputRequired });
  client = connected.client;
  await RUN[scenario](client, connected.transport);
} catch (error) {
  report.error = describeError(error);
  ok = false;
} finally {
  report.shown = shown;
  await client?.close().catch(() => {});
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exitCode = ok ? 0 : 1;
