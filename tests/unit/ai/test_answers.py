"""Answers that can be trusted: structure-aware chunking, hybrid retrieval, sentence-level
extractive answers, the query built from the question, and the grounding check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from orchestrator.ai import AIService, AISettings
from orchestrator.ai.grounding import check_grounding, retrieval_query
from orchestrator.ai.llm.extractive import ExtractiveBackend, answer_units, split_sentences
from orchestrator.ai.rag.chunking import chunk_document
from orchestrator.ai.rag.embeddings import Embedder
from orchestrator.ai.rag.ingest import extract_text
from orchestrator.ai.rag.lexical import content_terms, coverage, expand_day_ranges
from orchestrator.ai.rag.store import KnowledgeBaseStore
from orchestrator.ai.rag.types import SearchResult
from tests.fakes.openai_api import FakeOpenAI, serve

BAKERY_MD = """# Rosie's Bakery — customer information

## Opening hours

- Monday to Friday: 7:00–18:00
- Saturday: 8:00–16:00
- Sunday: closed

We are closed on Sundays and public holidays.

## Prices

| Item | Price | Notes |
|---|---|---|
| Butter croissant | £2.40 | baked every morning |
| Sourdough loaf | £4.50 | |

## Delivery

We deliver within 5 miles of the bakery, Tuesday to Saturday.
Delivery costs £3.50.
"""

ESCALATION = "A colleague will reply soon."


# -- chunking ---------------------------------------------------------------------------------


def test_markdown_headings_become_context_never_text() -> None:
    kind, text = extract_text("bakery.md", BAKERY_MD.encode())
    passages = chunk_document(text, size=700, overlap=120)
    by_heading = {p.context.split(" › ")[-1]: p for p in passages}
    assert set(by_heading) == {"Opening hours", "Prices", "Delivery"}
    hours = by_heading["Opening hours"]
    assert hours.context == "Rosie's Bakery — customer information › Opening hours"
    assert hours.text.splitlines() == [
        "Monday to Friday: 7:00–18:00",
        "Saturday: 8:00–16:00",
        "Sunday: closed",
        "We are closed on Sundays and public holidays.",
    ]
    # Table rows are units of their own; the header row is not one.
    assert by_heading["Prices"].text.splitlines() == [
        "Butter croissant: £2.40; notes: baked every morning",
        "Sourdough loaf: £4.50",
    ]
    # A soft-wrapped Markdown paragraph is one unit.
    assert by_heading["Delivery"].text == (
        "We deliver within 5 miles of the bakery, Tuesday to Saturday. Delivery costs £3.50."
    )
    for passage in passages:
        assert "#" not in passage.text
        assert "Opening hours" not in passage.text
        assert "Rosie's Bakery —" not in passage.text


def test_html_and_plain_text_keep_their_structure() -> None:
    html = (
        "<html><body><h1>Spokes</h1><h2>Hours</h2><ul><li>Saturday: 9:00–14:00</li>"
        "<li>Sunday: closed</li></ul><h2>Prices</h2><table>\n <tr><th>Service</th>"
        "<th>Price</th></tr>\n <tr><td>Puncture repair</td><td>€12</td></tr>\n</table>"
        "</body></html>"
    )
    _, text = extract_text("shop.html", html.encode())
    passages = chunk_document(text, size=500, overlap=50)
    assert [(p.context, p.text) for p in passages] == [
        ("Spokes › Hours", "Saturday: 9:00–14:00\nSunday: closed"),
        ("Spokes › Prices", "Puncture repair: €12"),
    ]
    plain = (
        "Bright Smile Dental\n\nOpening hours\nMonday to Thursday 8:00 to 19:00.\n"
        "Friday 8:00 to 15:00.\n\nFees\nNew patient examination: £60\nWhite filling: £120\n"
    )
    passages = chunk_document(plain, size=500, overlap=50)
    assert [(p.context, p.text) for p in passages] == [
        (
            "Bright Smile Dental › Opening hours",
            "Monday to Thursday 8:00 to 19:00.\nFriday 8:00 to 15:00.",
        ),
        ("Bright Smile Dental › Fees", "New patient examination: £60\nWhite filling: £120"),
    ]


def test_long_sections_are_packed_within_size() -> None:
    items = "\n".join(f"- Item number {i} costs {i} euros." for i in range(60))
    passages = chunk_document(f"# Price list\n\n{items}\n", size=200, overlap=40)
    assert len(passages) > 5
    assert all(len(p.text) <= 200 and p.context == "Price list" for p in passages)
    seen = {line for p in passages for line in p.text.splitlines()}
    assert len(seen) == 60, "no list item may be lost"


def test_sentences_and_units() -> None:
    assert split_sentences("Москва, ул. Профсоюзная, д. 25, вход со двора. Метро рядом.") == [
        "Москва, ул. Профсоюзная, д. 25, вход со двора.",
        "Метро рядом.",
    ]
    assert answer_units("Saturday: 8:00–16:00\nSunday: closed\nWe bake. Every day from 5 am.") == [
        "Saturday: 8:00–16:00",
        "Sunday: closed",
        "We bake. Every day from 5 am.",
    ]


def test_words_stems_and_day_ranges() -> None:
    assert content_terms("do you have gluten free bread?") == ["gluten", "free", "bread"]
    assert coverage(content_terms("женскую стрижку?"), "Женская стрижка: 2 500 ₽") == 1
    assert "wednesday" in expand_day_ranges("Tuesday to Friday: 9:00–18:30")
    assert "будни" in expand_day_ranges("Понедельник — пятница: с 10:00 до 21:00")


# -- hybrid retrieval -------------------------------------------------------------------------


async def test_hybrid_search_finds_the_rare_word_the_embedding_misses(
    kb_store: KnowledgeBaseStore,
) -> None:
    kb = await kb_store.create("Parts")
    distractors = [
        f"## Home inverters {i}\n\nWe stock inverters for your home: hybrid inverters and "
        f"string inverters, size {i} kW."
        for i in range(6)
    ]
    doc = "# Catalogue\n\n" + "\n\n".join(distractors)
    doc += "\n\n## Spare parts\n\nZorblax: in stock from March, order code ZX.\n"
    await kb_store.add_document(kb.id, "catalogue.md", doc.encode())
    query = "Do you stock the Zorblax inverter for my home?"
    results = await kb_store.search(kb.id, query, k=4)
    hit = next(r for r in results if r.text.startswith("Zorblax"))
    assert hit.context == "Catalogue › Spare parts"
    assert hit.lexical > 0.5
    # By cosine alone it is not among the best four: the BM25 ranking brought it in.
    everything = await kb_store.search(kb.id, query, k=10)
    assert sum(r.score > hit.score for r in everything) >= 4


# -- extractive answers -----------------------------------------------------------------------


def bakery_results() -> list[SearchResult]:
    _, text = extract_text("bakery.md", BAKERY_MD.encode())
    return [
        SearchResult(text=p.text, score=0.5, source="bakery.md", context=p.context)
        for p in chunk_document(text)
    ]


async def extractive_answer(embedder: Embedder, question: str) -> tuple[str, bool]:
    results = bakery_results()

    async def retrieve(_query: str) -> Sequence[SearchResult]:
        return results

    backend = ExtractiveBackend(
        retriever=retrieve, encoder=embedder.encode, escalation_text=ESCALATION
    )
    answer = await backend.generate([{"role": "user", "content": question}])
    return answer.text, answer.escalate


async def test_extractive_answers_with_the_unit_that_answers(embedder: Embedder) -> None:
    assert await extractive_answer(embedder, "u open saturday?") == (
        "Saturday: 8:00–16:00",
        False,
    )
    assert await extractive_answer(embedder, "how much for a croissant") == (
        "Butter croissant: £2.40; notes: baked every morning",
        False,
    )
    text, escalate = await extractive_answer(embedder, "Do you deliver?")
    assert not escalate
    assert text.startswith("We deliver within 5 miles")
    assert await extractive_answer(embedder, "do you have wifi?") == (ESCALATION, True)


# -- the query and the grounding check --------------------------------------------------------


def test_query_is_the_question_unless_it_refers_back() -> None:
    greeting = {"role": "assistant", "text": "Hello! I'm the bakery's assistant: ask me anything."}
    history = [greeting, {"role": "user", "text": "how much is a croissant?"}]
    assert retrieval_query("Do you deliver?", history) == "Do you deliver?"
    assert retrieval_query(
        "and on sunday?", [greeting, {"role": "user", "text": "open sat?"}]
    ) == ("open sat? and on sunday?")
    assert retrieval_query("how much is it?", history) == (
        "how much is a croissant? how much is it?"
    )
    # Never the bot's own words, and not the question itself recorded as history.
    assert retrieval_query("and that?", [greeting, {"role": "user", "text": "and that?"}]) == (
        "and that?"
    )


def test_grounding_check() -> None:
    passages = [
        SearchResult(
            text="We deliver within 5 miles of the bakery. Delivery costs £3.50.",
            score=0.6,
            source="bakery.md",
            context="Bakery › Delivery",
        )
    ]
    assert check_grounding(
        "Yes, we deliver within 5 miles; delivery costs £3.50.", passages
    ).supported
    assert check_grounding("Sure, happy to help!", passages).supported
    invented = check_grounding("Do you have a computer?", passages)
    assert not invented.supported
    wrong_price = check_grounding("Delivery costs £7.", passages)
    assert not wrong_price.supported
    assert "7" in wrong_price.reason
    assert not check_grounding("A colleague will get back to you.", passages).supported


@pytest.fixture
async def service(tmp_path: Path, embedder: Embedder) -> AsyncIterator[AIService]:
    settings = AISettings(
        data_dir=tmp_path / "data",
        llm_backoff_base_s=0.05,
        llm_timeout_s=2.0,
        llm_total_timeout_s=8.0,
        escalation_text=ESCALATION,
    )
    svc = AIService(settings, embedder=embedder)
    yield svc
    await svc.aclose()


async def test_an_invented_llm_answer_is_not_sent(service: AIService) -> None:
    kb = await service.kb.create("Bakery")
    await service.kb.add_document(kb.id, "bakery.md", BAKERY_MD.encode())
    fake = FakeOpenAI()
    async with serve(fake.app()) as url:
        service.settings.vllm_base_url = f"{url}/v1"
        service.settings.vllm_model = "tiny"
        bot = {"id": "bakery-bot", "llm_backend": "vllm", "knowledge_base_ids": [kb.id]}
        fake.reply = lambda msgs: "Do you have a computer? Our laptops start at 499 euros."
        invented = await service.reply(bot, "Do you deliver?")
        fake.reply = lambda msgs: "Yes, we deliver within 5 miles of the bakery."
        grounded = await service.reply(bot, "Do you deliver?")
    assert len(fake.requests) == 2  # the model was asked both times: its answer was judged
    assert invented["escalate"] is True
    assert invented["text"] == ESCALATION
    assert invented["confidence"] == 0.0
    assert grounded["escalate"] is False
    assert grounded["text"] == "Yes, we deliver within 5 miles of the bakery."


async def test_conversation_answers_like_the_preview(service: AIService) -> None:
    kb = await service.kb.create("Bakery")
    await service.kb.add_document(kb.id, "bakery.md", BAKERY_MD.encode())
    bot = {"id": "b", "knowledge_base_ids": [kb.id]}
    greeting = (
        "Hello and welcome to Rosie's Bakery! Ask me about opening hours, prices or delivery, "
        "or type 'person' to talk to someone."
    )
    preview = await service.reply(bot, "u open saturday?")
    # As a bot sends it: its greeting, then the question it has just recorded.
    history = [
        {"role": "assistant", "text": greeting},
        {"role": "user", "text": "u open saturday?"},
    ]
    conversation = await service.reply(bot, "u open saturday?", history)
    assert preview["text"] == conversation["text"] == "Saturday: 8:00–16:00"
    assert conversation["escalate"] is False
