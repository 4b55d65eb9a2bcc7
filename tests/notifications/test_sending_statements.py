"""The send engine's server-side prepared statements: prepared once per connection and schema, evicted
least recently used first, all forgotten after a failed query."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from notifications import sending


def test_prepared_once_per_schema_then_executed() -> None:
    names: OrderedDict[str, None] = OrderedDict()
    first = sending._execute(names, "t_acme", "send", "%(items)s, %(n)s, %(pk_limit)s, %(now)s")
    assert first[0].startswith("PREPARE herald_send_") and first[1].startswith("EXECUTE herald_send_")
    assert '"t_acme".notifications_inboxitem' in first[0] and "$4" in first[0] and "%(" not in first[0]
    again = sending._execute(names, "t_acme", "send", "%(items)s, %(n)s, %(pk_limit)s, %(now)s")
    assert again == [first[1]]
    other = sending._execute(names, "t_globex", "send", "%(items)s, %(n)s, %(pk_limit)s, %(now)s")
    assert other[0].startswith("PREPARE") and '"t_globex".notifications_message' in other[0]
    assert other[1] != first[1]


def test_least_recently_used_statements_are_deallocated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sending, "_PREPARED_MAX", 2)
    names: OrderedDict[str, None] = OrderedDict()
    a = sending._execute(names, "t_a", "ensure", "%(external_ids)s")[-1]
    sending._execute(names, "t_b", "ensure", "%(external_ids)s")
    sending._execute(names, "t_a", "ensure", "%(external_ids)s")  # t_a used last: t_b goes first
    c = sending._execute(names, "t_c", "ensure", "%(external_ids)s")
    assert c[0].startswith("DEALLOCATE herald_ensure_") and c[0] not in a
    assert len(names) == 2 and a.removeprefix("EXECUTE ").split("(")[0] in names


def test_after_a_failure_everything_is_prepared_again() -> None:
    names: OrderedDict[str, None] = OrderedDict()
    sending._execute(names, "t_a", "ensure", "%(external_ids)s")
    names.clear()
    names[sending._DEALLOCATE_ALL] = None
    statements = sending._execute(names, "t_a", "ensure", "%(external_ids)s")
    assert statements[0] == "DEALLOCATE ALL" and statements[1].startswith("PREPARE herald_ensure_")


def test_without_prepared_statements_the_sql_itself_runs(settings: pytest.FixtureRequest) -> None:
    settings.DATABASE_PREPARED_STATEMENTS = False  # type: ignore[attr-defined]
    names: OrderedDict[str, None] = OrderedDict()
    (send,) = sending._execute(names, "t_acme", "send", "%(items)s, %(n)s, %(pk_limit)s, %(now)s")
    (ensure,) = sending._execute(names, "t_acme", "ensure", "%(external_ids)s")
    for sql in (send, ensure):
        assert "PREPARE" not in sql and "EXECUTE" not in sql and "$1" not in sql
    assert '"t_acme".notifications_inboxitem' in send and "%(items)s" in send
    assert '"t_acme".notifications_subscriber' in ensure and "%(external_ids)s::text[]" in ensure
    assert not names
