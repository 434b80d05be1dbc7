"""Tool definitions and results for LLM APIs: export, vendor rules, adapters (see README.md)."""
