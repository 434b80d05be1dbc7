// The command Claude Desktop would run for an unpacked MCP bundle, worked out by the code Claude Desktop uses:
// getMcpConfigForManifest from @anthropic-ai/mcpb (platform overrides, ${__dirname}, ${user_config.*}, the check that
// every required setting was given). Prints {"command", "args", "env"} as JSON, or exits 1 when Claude Desktop would
// not start the server.
//
//   node clients/mcpb_config.mjs --dir UNPACKED [--user-config '{"sandbox": true}'] [--home DIR]
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve, sep } from "node:path";
import { parseArgs } from "node:util";

import { getMcpConfigForManifest } from "@anthropic-ai/mcpb";

const { values } = parseArgs({
  options: {
    dir: { type: "string" },
    "user-config": { type: "string", default: "{}" },
    home: { type: "string", default: homedir() },
  },
});
if (!values.dir) {
  console.error("usage: node clients/mcpb_config.mjs --dir UNPACKED [--user-config JSON] [--home DIR]");
  process.exit(2);
}
const dir = resolve(values.dir);
const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
const home = values.home;
const config = await getMcpConfigForManifest({
  manifest,
  extensionPath: dir,
  systemDirs: {
    HOME: home,
    DESKTOP: join(home, "Desktop"),
    DOCUMENTS: join(home, "Documents"),
    DOWNLOADS: join(home, "Downloads"),
  },
  userConfig: JSON.parse(values["user-config"]),
  pathSeparator: sep,
  logger: { log: () => {}, warn: (message) => console.error(message), error: (message) => console.error(message) },
});
if (!config) {
  console.error("Claude Desktop would not start this server (a required setting is missing)");
  process.exit(1);
}
const { command, args = [], env = {} } = config;
console.log(JSON.stringify({ command, args, env }));
