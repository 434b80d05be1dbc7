"""The core: FLORA techniques as tools, the run lifecycle, budgets, the journal and results (see README.md)."""
