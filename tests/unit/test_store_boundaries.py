"""Where SQL may live: no raw SQL on a bot database outside ``shared/store``, and every statement
on the ``outbox`` table in ``shared/store/outbox.py`` (the exactly-once bookkeeping)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Packages that may not run SQL themselves (the orchestrator's own database goes through
#: SQLAlchemy sessions and is checked separately below).
NO_SQL = ("shared", "whatsapp_bot", "sms_bot", "telegram_bot", "admin_ui")
EXECUTE = {"execute", "executemany", "executescript"}
OUTBOX_DML = re.compile(r"\b(UPDATE|INSERT INTO|FROM|JOIN)\s+outbox\b", re.IGNORECASE)


def _python_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]


def _calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text(), str(path))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def test_no_raw_sql_outside_the_store_package() -> None:
    store = ROOT / "shared" / "store"
    found = [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for path in _python_files(*NO_SQL)
        if store not in path.parents
        for call in _calls(path)
        if isinstance(call.func, ast.Attribute) and call.func.attr in EXECUTE
    ]
    assert found == []


def test_the_orchestrator_opens_no_bot_database_itself() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for path in _python_files("orchestrator")
        for call in _calls(path)
        if isinstance(call.func, ast.Attribute)
        and call.func.attr == "connect"
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id == "sqlite3"
    ]
    assert found == []


def test_outbox_statements_live_in_the_outbox_store_module() -> None:
    files = _python_files("shared", "whatsapp_bot", "sms_bot", "telegram_bot", "orchestrator")
    holders = sorted(
        str(path.relative_to(ROOT))
        for path in files
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and OUTBOX_DML.search(node.value)
    )
    assert set(holders) == {"shared/store/outbox.py"}
