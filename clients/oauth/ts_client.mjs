#!/usr/bin/env node
// The TypeScript SDK (@modelcontextprotocol/sdk, in clients/node_modules) against a hosted flora-mcp with OAuth:
// first with no credentials (what its 401 tells the SDK: the metadata URL, the scope, the authorization server), then
// signed in with the SDK's own ClientCredentialsProvider, listing the tools and calling one. Prints one JSON object.
//
//   node clients/oauth/ts_client.mjs --url http://127.0.0.1:PORT/mcp --issuer ISSUER --client-id m2m \
//        --client-secret m2m-secret --scope flora:run --tool qr-code-generator --arg content=hello
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { discoverOAuthServerInfo, extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' }, issuer: { type: 'string' }, scope: { type: 'string' },
    'client-id': { type: 'string' }, 'client-secret': { type: 'string' },
    tool: { type: 'string' }, arg: { type: 'string', multiple: true },
  },
});
const url = new URL(values.url);
const report = {};

// 1. No credentials: the SDK's client is refused, and the 401 carries what it needs to start a flow.
try {
  const client = new Client({ name: 'flora-mcp-oauth-test', version: '0.0.0' });
  await client.connect(new StreamableHTTPClientTransport(url));
  report.anonymous = { connected: true };
  await client.close();
} catch (error) {
  report.anonymous = { connected: false, error: error.constructor.name, message: String(error.message) };
}
const challenge = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
  body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
    protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } }),
});
const params = extractWWWAuthenticateParams(challenge);
report.challenge = { status: challenge.status, resourceMetadataUrl: params.resourceMetadataUrl?.href ?? null,
                     scope: params.scope ?? null, error: params.error ?? null };
const info = await discoverOAuthServerInfo(url, { resourceMetadataUrl: params.resourceMetadataUrl });
report.discovery = { authorizationServerUrl: info.authorizationServerUrl, resource: info.resourceMetadata?.resource,
                     tokenEndpoint: info.authorizationServerMetadata?.token_endpoint ?? null,
                     registrationEndpoint: info.authorizationServerMetadata?.registration_endpoint ?? null };

// 2. Signed in with client credentials, by the SDK's own provider.
if (values['client-id']) {
  const provider = new ClientCredentialsProvider({ clientId: values['client-id'], clientSecret: values['client-secret'],
                                                   scope: values.scope, expectedIssuer: values.issuer });
  const client = new Client({ name: 'flora-mcp-oauth-test', version: '0.0.0' });
  try {
    await client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
    report.tools = (await client.listTools()).tools.map((t) => t.name);
    if (values.tool) {
      const args = Object.fromEntries((values.arg ?? []).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
      const result = await client.callTool({ name: values.tool, arguments: args });
      report.call = { isError: result.isError ?? false, structuredContent: result.structuredContent ?? null };
    }
  } catch (error) {
    report.signedIn = { error: error.constructor.name, message: String(error.message) };
  } finally {
    await client.close();
  }
}
process.stdout.write(`${JSON.stringify(report)}\n`);
