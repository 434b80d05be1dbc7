"""The README's table of what each client gets names its proofs: every `file::test` in it is a test that exists, so the
table cannot keep citing a test that was renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIENT_TESTS = REPO / "tests" / "clients"


def table_rows() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("### What each client gets", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) >= 6, rows  # the header and a row per client
    return rows[1:]


def test_every_test_the_client_table_cites_exists() -> None:
    cited = 0
    for row in table_rows():
        current: Path | None = None  # a bare `::name` is in the file named last in the row
        for file, name in re.findall(r"(test_\w+\.py)?::(test_\w+)", row):
            if file:
                current = CLIENT_TESTS / file
            assert current is not None and current.is_file(), (row[:80], file)
            assert re.search(rf"^(async )?def {name}\(", current.read_text(), flags=re.MULTILINE), (current.name, name)
            cited += 1
    assert cited >= 20, cited
