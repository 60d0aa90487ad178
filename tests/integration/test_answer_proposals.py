"""Owner answers → knowledge base (issue 13 item 6): a resolved handover's question and the
person's replies become a proposed Q/A pair; accept (as is or edited) adds it to the bot's
knowledge base, drop discards it; ``handoff.auto_accept_answers`` accepts at resolve.

The API tests write the handover and the person's replies with the bot's own store code (as a
running bot would) and record the proposal with the function the resolve route calls; the last
test runs a real orchestrator, a real whatsapp_bot subprocess and the sandbox end to end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from orchestrator.api.routes.proposals import propose_from_handover
from orchestrator.models import AnswerProposal, BotInstance
from orchestrator.security import create_internal_token
from shared.channels.base import CustomerRef
from shared.store import handovers as ho
from shared.store.sqlite import BotStore
from tests.conftest import TEST_SECRET_KEY, Actors
from tests.support.orchestrator_proc import OrchestratorProcess, free_port
from tests.support.wa import WaCustomer, body_text, bot_fields

BASE = "/admin/whatsapp/instances"
T0 = datetime.now(UTC) - timedelta(minutes=5)
QUESTION = "Do you deliver to Gdansk?"
ANSWER = "Yes, we deliver to Gdansk in two days."


def _bot(client: TestClient, headers: dict[str, str], name: str, **fields: Any) -> str:
    res = client.post(BASE, json={"name": name, **fields}, headers=headers)
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def _resolved_handover(
    client: TestClient,
    bot_id: str,
    phone: str,
    replies: list[str],
    *,
    reason: str = "llm_escalate",
    question: str = QUESTION,
) -> int:
    """A customer's question handed to a person who replied ``replies`` and resolved it."""
    data_dir: Path = client.app.state.settings.data_dir  # type: ignore[attr-defined]
    store = BotStore.open(data_dir / f"wa_sales_{bot_id}.db")
    try:
        ref = CustomerRef(phone=phone, profile_name="Ana")
        user = store.resolve_user(ref, now=T0)
        store.add_message(
            direction="in", customer=phone, type_="text", text=question, user_id=user.id, now=T0
        )
        h, _ = ho.open_handover(
            store, user.id, reason=reason, question=question, customer=phone, now=T0
        )
        ho.take(store, h.id, assignee="alice", now=T0 + timedelta(seconds=1))
        for i, text in enumerate(replies):
            store.outbox_add(
                customer=ref,
                reply={"type": "text", "text": text},
                user_id=user.id,
                origin="operator",
                now=T0 + timedelta(seconds=2 + i),
            )
        ho.resolve(store, h.id, by="alice", now=T0 + timedelta(seconds=30))
        # A later operator message (after the resolve) is not part of the answer.
        store.outbox_add(
            customer=ref,
            reply={"type": "text", "text": "LATER MESSAGE"},
            user_id=user.id,
            origin="operator",
            now=T0 + timedelta(seconds=60),
        )
        return h.id
    finally:
        store.close()


def _propose(client: TestClient, bot_id: str, handover_id: int) -> int | None:
    app: Any = client.app
    with Session(app.state.engine) as session:
        bot = session.get(BotInstance, bot_id)
        assert bot is not None
        proposal = propose_from_handover(session, app.state.settings, bot, handover_id)
        return proposal.id if proposal is not None else None


@pytest.fixture
def proposals(client: TestClient, actors: Actors) -> dict[str, Any]:
    alice_bot = _bot(client, actors.headers["alice"], "Alice Shop")
    bob_bot = _bot(client, actors.headers["bob"], "Bob Shop")
    ah = _resolved_handover(client, alice_bot, "+48600100200", ["Yes,", ANSWER])
    bh = _resolved_handover(client, bob_bot, "+48600100300", ["Bob's answer."])
    return {
        "alice_bot": alice_bot,
        "bob_bot": bob_bot,
        "alice_p": _propose(client, alice_bot, ah),
        "bob_p": _propose(client, bob_bot, bh),
        "alice_h": ah,
    }


def test_a_resolved_handover_becomes_one_proposal_listed_per_user(
    client: TestClient, actors: Actors, proposals: dict[str, Any]
) -> None:
    assert proposals["alice_p"] is not None
    # Resolving is idempotent here: the same handover gives the same proposal.
    assert _propose(client, proposals["alice_bot"], proposals["alice_h"]) == proposals["alice_p"]

    def listed(user: str) -> list[str]:
        res = client.get("/admin/answer-proposals", headers=actors.headers[user])
        assert res.status_code == 200, res.text
        return sorted(p["bot_id"] for p in res.json())

    both = sorted([proposals["alice_bot"], proposals["bob_bot"]])
    assert listed("admin") == both
    assert listed("gary") == both
    assert listed("alice") == [proposals["alice_bot"]]
    assert listed("bob") == [proposals["bob_bot"]]
    row = client.get("/admin/answer-proposals", headers=actors.headers["alice"]).json()[0]
    assert row["question"] == QUESTION
    assert row["answer"] == f"Yes,\n{ANSWER}"  # every reply while it was open; not later ones
    assert row["answered_by"] == "alice"
    assert row["status"] == "proposed"
    assert row["bot_name"] == "Alice Shop"
    assert row["customer_key"] == "+48600100200"
    one = client.get(
        f"{BASE}/{proposals['alice_bot']}/answer-proposals", headers=actors.headers["alice"]
    )
    assert [p["id"] for p in one.json()] == [proposals["alice_p"]]


def test_no_proposal_without_a_reply(client: TestClient, actors: Actors) -> None:
    bot = _bot(client, actors.headers["alice"], "Quiet Shop")
    hid = _resolved_handover(client, bot, "+48600100400", [])
    assert _propose(client, bot, hid) is None
    assert _propose(client, bot, 999) is None
    # Asking for a person is no question to learn an answer for.
    asked = _resolved_handover(
        client,
        bot,
        "+48600100500",
        ["Hi, Maria here."],
        reason="ask_for_person",
        question="I want to talk to a person",
    )
    assert _propose(client, bot, asked) is None


def test_accept_edited_creates_and_links_an_answers_base(
    client: TestClient, actors: Actors, proposals: dict[str, Any]
) -> None:
    alice, bot, pid = actors.headers["alice"], proposals["alice_bot"], proposals["alice_p"]
    res = client.post(
        f"{BASE}/{bot}/answer-proposals/{pid}/accept", headers=alice, json={"answer": ANSWER}
    )
    assert res.status_code == 200, res.text
    accepted = res.json()
    assert (accepted["status"], accepted["answer"], accepted["decided_by"]) == (
        "accepted",
        ANSWER,
        "alice",
    )
    kb_id = accepted["kb_id"]
    assert client.get(f"{BASE}/{bot}", headers=alice).json()["knowledge_base_ids"] == [kb_id]
    base = client.get(f"/admin/knowledge/{kb_id}", headers=alice).json()
    assert base["name"] == "Alice Shop answers"
    # The bot now answers the question with the person's answer.
    app: Any = client.app
    with Session(app.state.engine) as session:
        row = session.get(BotInstance, bot)
        assert row is not None
        token = create_internal_token(
            TEST_SECRET_KEY, instance_id=bot, kind=row.kind, gen=row.spawn_generation, minutes=5
        )
    reply = client.post(
        "/internal/llm/reply",
        json={"text": QUESTION, "history": [], "customer": "+48600100200"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert reply["text"] == ANSWER
    assert reply["escalate"] is False
    # Accepted once: a second accept or a drop is 409; the list no longer shows it.
    again = client.post(f"{BASE}/{bot}/answer-proposals/{pid}/accept", headers=alice)
    assert again.status_code == 409
    assert (
        client.post(f"{BASE}/{bot}/answer-proposals/{pid}/drop", headers=alice).status_code == 409
    )
    assert client.get("/admin/answer-proposals", headers=alice).json() == []
    done = client.get(
        "/admin/answer-proposals", headers=alice, params={"status": "accepted"}
    ).json()
    assert [p["id"] for p in done] == [pid]


def test_drop_and_abuse(client: TestClient, actors: Actors, proposals: dict[str, Any]) -> None:
    bot, pid = proposals["alice_bot"], proposals["alice_p"]
    url = f"{BASE}/{bot}/answer-proposals/{pid}"
    alice = actors.headers["alice"]
    assert client.post(f"{url}/drop").status_code == 401
    assert client.post(f"{url}/drop", headers=actors.headers["gary"]).status_code == 403
    assert client.post(f"{url}/accept", headers=actors.headers["gary"]).status_code == 403
    assert client.post(f"{url}/drop", headers=actors.headers["bob"]).status_code == 404
    assert client.post(f"{url}/accept", headers=actors.headers["bob"]).status_code == 404
    # Bob's proposal id under Alice's bot is not found either.
    other = f"{BASE}/{bot}/answer-proposals/{proposals['bob_p']}/drop"
    assert client.post(other, headers=alice).status_code == 404
    for bad in ("abc", "0", str(2**60)):
        res = client.post(f"{BASE}/{bot}/answer-proposals/{bad}/drop", headers=alice)
        assert res.status_code == 422
    assert client.post(f"{BASE}/nobot/answer-proposals/1/drop", headers=alice).status_code == 404
    huge = client.post(f"{url}/accept", headers=alice, json={"answer": "x" * 9000})
    assert huge.status_code == 422
    extra = client.post(f"{url}/accept", headers=alice, json={"answer": "a", "kb_id": "x"})
    assert extra.status_code == 422
    blank = client.post(f"{url}/accept", headers=alice, json={"question": "   "})
    assert blank.status_code == 422
    assert "question" in str(blank.json())
    bad_status = client.get("/admin/answer-proposals", headers=alice, params={"status": "x"})
    assert bad_status.status_code == 422
    # Nothing was accepted by the refused calls; the bot has no base yet.
    assert client.get(f"{BASE}/{bot}", headers=alice).json()["knowledge_base_ids"] in (None, [])
    dropped = client.post(f"{url}/drop", headers=alice)
    assert dropped.status_code == 200, dropped.text
    assert dropped.json()["status"] == "dropped"
    assert client.post(f"{url}/accept", headers=alice).status_code == 409
    assert client.get("/admin/answer-proposals", headers=alice).json() == []


def test_auto_accept_switch_is_checked(client: TestClient, actors: Actors) -> None:
    alice = actors.headers["alice"]
    bot = _bot(client, alice, "Auto Shop", handoff={"auto_accept_answers": True})
    cfg = client.get(f"{BASE}/{bot}", headers=alice).json()["handoff"]
    assert cfg["auto_accept_answers"] is True
    bad = client.put(f"{BASE}/{bot}", headers=alice, json={"handoff": {"auto_accept_answers": 3}})
    assert bad.status_code == 422


# -- end to end: a real orchestrator, a real bot, the sandbox ----------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrchestratorProcess, str]]:
    sandbox_port = free_port()
    orch = OrchestratorProcess(
        tmp_path_factory.mktemp("answer-proposals"),
        FLOTILLA_SANDBOX="true",
        FLOTILLA_SANDBOX_PORT=str(sandbox_port),
    ).start()
    yield orch, f"http://127.0.0.1:{sandbox_port}"
    orch.close()


def _wait_for(fn: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_after_accepting_the_bot_answers_the_same_question_itself(
    live: tuple[OrchestratorProcess, str],
) -> None:
    orch, sandbox_url = live
    bot = orch.create_bot(name="Delivery Bot", **bot_fields(sandbox_url))
    assert orch.api("POST", f"{BASE}/{bot['id']}/start").status_code == 200
    port = orch.wait_state("whatsapp", bot["id"], "running")["port"]
    customer = WaCustomer(f"http://127.0.0.1:{port}", sandbox_url, "+15550108001")

    # Nothing in a knowledge base: the bot hands the question to a person.
    assert "A manager will answer you here shortly." in [
        body_text(m) for m in customer.say(QUESTION)
    ]
    handover = _wait_for(lambda: orch.api("GET", "/admin/handovers").json())[0]
    assert handover["question"] == QUESTION
    url = f"{BASE}/{bot['id']}/handovers/{handover['id']}"
    assert orch.api("POST", f"{url}/reply", json={"text": ANSWER}).status_code == 202
    assert [body_text(m) for m in customer.replies()] == [ANSWER]
    done = orch.api("POST", f"{url}/resolve")
    assert done.status_code == 200, done.text
    proposal = done.json()["answer_proposal"]
    assert (proposal["question"], proposal["answer"], proposal["status"]) == (
        QUESTION,
        ANSWER,
        "proposed",
    )
    listed = orch.api("GET", "/admin/answer-proposals").json()
    assert [p["id"] for p in listed] == [proposal["id"]]

    accepted = orch.api(
        "POST", f"{BASE}/{bot['id']}/answer-proposals/{proposal['id']}/accept", json={}
    )
    assert accepted.status_code == 200, accepted.text

    # The same question again: the bot answers with the person's answer, no new handover.
    assert [body_text(m) for m in customer.say(QUESTION)] == [ANSWER]
    assert orch.api("GET", "/admin/handovers").json() == []
    history = orch.api("GET", f"{BASE}/{bot['id']}/handovers").json()
    assert [h["id"] for h in history] == [handover["id"]]


@pytest.mark.slow
def test_auto_accept_adds_the_answer_at_resolve(live: tuple[OrchestratorProcess, str]) -> None:
    orch, sandbox_url = live
    bot = orch.create_bot(
        name="Auto Bot", handoff={"auto_accept_answers": True}, **bot_fields(sandbox_url)
    )
    assert orch.api("POST", f"{BASE}/{bot['id']}/start").status_code == 200
    port = orch.wait_state("whatsapp", bot["id"], "running")["port"]
    customer = WaCustomer(f"http://127.0.0.1:{port}", sandbox_url, "+15550108002")
    question = "Can I pay with a gift card?"
    customer.say(question)
    mine = lambda: [  # noqa: E731
        h for h in orch.api("GET", "/admin/handovers").json() if h["bot_id"] == bot["id"]
    ]
    handover = _wait_for(mine)[0]
    url = f"{BASE}/{bot['id']}/handovers/{handover['id']}"
    answer = "Yes, gift cards work in every shop."
    assert orch.api("POST", f"{url}/reply", json={"text": answer}).status_code == 202
    assert [body_text(m) for m in customer.replies()] == [answer]
    done = orch.api("POST", f"{url}/resolve").json()
    assert done["answer_proposal"]["status"] == "accepted"
    assert done["answer_proposal"]["decided_by"] == "auto"
    assert [body_text(m) for m in customer.say(question)] == [answer]


def test_deleting_the_bot_deletes_its_proposals(
    client: TestClient, actors: Actors, proposals: dict[str, Any]
) -> None:
    alice, bot = actors.headers["alice"], proposals["alice_bot"]
    assert client.delete(f"{BASE}/{bot}", headers=alice).status_code in (200, 204)
    left = client.get("/admin/answer-proposals", headers=actors.headers["admin"]).json()
    assert [p["bot_id"] for p in left] == [proposals["bob_bot"]]
    app: Any = client.app
    with Session(app.state.engine) as session:
        rows = session.exec(select(AnswerProposal).where(AnswerProposal.bot_id == bot)).all()
    assert rows == []


def test_two_accepts_at_once_add_the_pair_once(
    client: TestClient, actors: Actors, proposals: dict[str, Any]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    alice, bot, pid = actors.headers["alice"], proposals["alice_bot"], proposals["alice_p"]
    url = f"{BASE}/{bot}/answer-proposals/{pid}/accept"
    with ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(lambda _: client.post(url, headers=alice).status_code, range(2)))
    assert codes == [200, 409]
    kb_id = client.get(f"{BASE}/{bot}", headers=alice).json()["knowledge_base_ids"][0]
    docs = client.get(f"/admin/knowledge/{kb_id}", headers=alice).json()["documents"]
    assert [d["kind"] for d in docs] == ["qa"]
