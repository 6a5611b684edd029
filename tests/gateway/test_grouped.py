"""SQLite: the webhooks of one process waiting for the writer's turn are stored in one
transaction, one durable commit, and none is answered before that commit (gateway/grouped.py).
A row the database refuses fails alone; a provider's retry in the same group is stored once.
The log these commits write is copied even when nothing but webhooks writes."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import select

from gateway import direct, grouped, turns
from gateway.intake import insert_inbound, write
from gateway.models import InboundMessage

pytestmark = pytest.mark.sqlite_only  # PostgreSQL commits concurrently: no group there

WAIT = 20  # seconds: a bound for threads, never reached when the test passes


@pytest.fixture
def runtime(make_app):
    return make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]


@pytest.fixture
def commits(monkeypatch) -> list[tuple[float, int]]:
    """Each commit of a webhook's connection that had written: (when it ended, rows it held)."""
    seen: list[tuple[float, int]] = []
    real_commit, real_rollback = direct.DirectConnection.commit, direct.DirectConnection.rollback
    since: dict[int, int] = {}  # connection → its rows written when its last transaction ended

    def commit(self):
        wrote = self.driver.in_transaction
        real_commit(self)
        if wrote:
            seen.append((time.monotonic(), self.driver.total_changes - since.get(id(self), 0)))
        since[id(self)] = self.driver.total_changes

    def rollback(self):
        real_rollback(self)
        since[id(self)] = self.driver.total_changes

    monkeypatch.setattr(direct.DirectConnection, "commit", commit)
    monkeypatch.setattr(direct.DirectConnection, "rollback", rollback)
    return seen


def _document(i: int) -> bytes:
    return json.dumps({"update_id": i, "message": {"text": "Nid-de-poule rue King Ouest"}}).encode()


def _webhooks_behind_a_batch(runtime, messages: list[tuple[str, bytes | None]]) -> list[dict]:
    """Each (provider id, body) written by a thread of its own while a pipeline batch holds the
    writer's turn; the batch ends once all of them are waiting. Each result: what ``write``
    returned (``stored``) or raised (``error``), and when (``at``)."""
    results = [{} for _ in messages]

    def webhook(i, provider_id, body):
        def work(connection):
            return insert_inbound(connection, "telegram", provider_id, body, "application/json")
        try:
            results[i]["stored"] = write(runtime, work)
        except Exception as exc:
            results[i]["error"] = exc
        results[i]["at"] = time.monotonic()

    threads = [threading.Thread(target=webhook, args=(i, *message), daemon=True) for i, message in enumerate(messages)]
    with runtime.db.turns.batch():
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        assert not any(results)  # all waiting for the batch's turn
    for thread in threads:
        thread.join(WAIT)
    return results


def _stored(runtime) -> list[str]:
    with runtime.db.session() as session:
        return sorted(session.scalars(select(InboundMessage.provider_id)))


def test_webhooks_waiting_for_the_writers_turn_are_stored_by_one_commit_before_any_is_answered(runtime, commits):
    results = _webhooks_behind_a_batch(runtime, [(str(i), _document(i)) for i in range(4)])

    assert _stored(runtime) == ["0", "1", "2", "3"]
    assert [held for _, held in commits] == [4]  # one commit for the four rows
    committed_at = commits[0][0]
    assert all(result["stored"].created and result["at"] >= committed_at for result in results)
    assert len({result["stored"].id for result in results}) == 4  # each told its own row


def test_a_row_the_database_refuses_fails_alone_and_the_others_are_stored(runtime, commits):
    messages = [("0", _document(0)), ("1", None), ("2", _document(2)), ("3", _document(3))]  # body NOT NULL

    results = _webhooks_behind_a_batch(runtime, messages)

    assert "error" in results[1] and "stored" not in results[1]  # that webhook answers 5xx: the provider retries
    assert all(results[i]["stored"].created for i in (0, 2, 3))
    assert _stored(runtime) == ["0", "2", "3"]
    assert sorted(held for _, held in commits) == [1, 1, 1]  # written again one by one after the group failed


def test_a_providers_retry_in_the_same_group_as_its_first_delivery_is_stored_once(runtime, commits):
    results = _webhooks_behind_a_batch(runtime, [("7", _document(7)), ("7", _document(7)), ("8", _document(8))])

    assert _stored(runtime) == ["7", "8"]
    first, retry = results[0]["stored"], results[1]["stored"]
    assert sorted([first.created, retry.created]) == [False, True]
    assert first.id == retry.id
    assert [held for _, held in commits] == [2]


def test_the_log_is_copied_while_nothing_but_webhooks_writes(runtime, monkeypatch):
    """No pipeline worker and no scheduler running (the storm's backlog waiting for them): the
    webhooks' own commits copy the log once it is long, so it does not grow without end."""
    monkeypatch.setattr(turns, "CHECKPOINT_FRAMES", 40)
    monkeypatch.setattr(grouped, "CHECK_EVERY", 4)
    most = 0
    for i in range(200):
        write(runtime, lambda connection, i=i: insert_inbound(connection, "telegram", str(i), _document(i),
                                                              "application/json"))
        most = max(most, turns._frames_not_copied(runtime.db.turns.index_path))

    assert len(_stored(runtime)) == 200
    assert most < 40 + 4 * 10  # long enough to be copied, plus the groups until the next look
