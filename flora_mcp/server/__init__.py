"""MCP wiring on top of the core's Toolkit: handlers, tasks, notifications, stdio (see README.md)."""
