"""Small sample datasets written by llmship itself, so the demo and tests need no download.

`samsum`: chat dialogues with one-sentence summaries, in SAMSum's schema
(id, dialogue, summary). `bio-qa`: question/answer pairs about invented people.
Both are generated from templates with a fixed seed: the same rows every time.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from llmship.errors import DataError

NAMES = [
    "Anna",
    "Tom",
    "Maria",
    "Lucas",
    "Emma",
    "Noah",
    "Olivia",
    "Liam",
    "Sophie",
    "Jack",
    "Mia",
    "Leo",
    "Chloe",
    "Ben",
    "Zoe",
    "Sam",
    "Ella",
    "Max",
    "Grace",
    "Dan",
]
PLACES = [
    "the cafe",
    "the park",
    "the office",
    "the station",
    "the gym",
    "the library",
    "the cinema",
    "the market",
]
TIMES = ["9", "10", "11", "noon", "2", "4", "6", "8"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ITEMS = ["milk", "bread", "coffee", "apples", "rice", "eggs", "cheese", "juice"]
MEALS = ["lunch", "dinner", "breakfast", "coffee"]
THINGS = ["keys", "laptop", "umbrella", "wallet", "charger", "jacket", "book", "phone"]

# Each scenario: (dialogue lines, summary); {a} and {b} are the speakers.
SCENARIOS = [
    (
        [
            "{a}: Are we still on for {meal} at {place}?",
            "{b}: Yes! See you at {time}.",
            "{a}: Great, I will book a table.",
        ],
        "{a} and {b} will have {meal} at {place} at {time}.",
    ),
    (
        [
            "{a}: Can you buy {item} on your way home?",
            "{b}: Sure, anything else?",
            "{a}: No, just {item}. Thanks!",
        ],
        "{b} will buy {item} for {a} on the way home.",
    ),
    (
        [
            "{a}: I left my {thing} at {place}.",
            "{b}: Oh no. I can pick it up on {day}.",
            "{a}: You are a star, thank you.",
        ],
        "{a} left the {thing} at {place} and {b} will pick it up on {day}.",
    ),
    (
        [
            "{a}: The meeting moved to {day}.",
            "{b}: What time?",
            "{a}: At {time}, same room.",
            "{b}: Got it.",
        ],
        "The meeting moved to {day} at {time}.",
    ),
    (
        [
            "{a}: I am running late, sorry.",
            "{b}: How late?",
            "{a}: I will be at {place} by {time}.",
            "{b}: No problem, I will wait.",
        ],
        "{a} is late and will be at {place} by {time}; {b} will wait.",
    ),
    (
        [
            "{a}: Do you want to go to {place} on {day}?",
            "{b}: I can't on {day}, I am busy.",
            "{a}: Maybe next week then.",
            "{b}: Yes, next week works.",
        ],
        "{b} is busy on {day}, so {a} and {b} will go to {place} next week.",
    ),
    (
        [
            "{a}: Did you see my {thing}?",
            "{b}: It is on the table at {place}.",
            "{a}: Found it, thanks!",
        ],
        "{a} found the {thing} at {place} thanks to {b}.",
    ),
    (
        [
            "{a}: Happy birthday, {b}!",
            "{b}: Thank you so much!",
            "{a}: Let's celebrate with {meal} on {day}.",
            "{b}: I would love that.",
        ],
        "{a} wished {b} a happy birthday and they will celebrate with {meal} on {day}.",
    ),
]

PROFESSIONS = [
    "painter",
    "chemist",
    "pilot",
    "composer",
    "architect",
    "teacher",
    "engineer",
    "novelist",
    "botanist",
    "chef",
]
CITIES = [
    "Lisbon",
    "Oslo",
    "Kyoto",
    "Lima",
    "Dublin",
    "Nairobi",
    "Quebec",
    "Porto",
    "Krakow",
    "Hanoi",
]
SURNAMES = [
    "Varga",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Silva",
    "Novak",
    "Haddad",
    "Keller",
    "Duarte",
]
QUESTIONS = [
    ("Where was {name} born?", "{name} was born in {city}."),
    ("What does {name} do?", "{name} works as a {profession}."),
    ("When was {name} born?", "{name} was born in {year}."),
    ("Who is {name}?", "{name} is a {profession} from {city}, born in {year}."),
]

SAMPLES = {
    "samsum": "dialogue summarization in SAMSum's schema (id, dialogue, summary)",
    "bio-qa": "question/answer pairs about invented people (question, answer)",
}


def samsum_rows(count: int = 800, seed: int = 7) -> list[dict[str, str]]:
    """Dialogues with summaries, SAMSum's fields."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        lines, summary = SCENARIOS[index % len(SCENARIOS)]
        a, b = rng.sample(NAMES, 2)
        slots = {
            "a": a,
            "b": b,
            "place": rng.choice(PLACES),
            "time": rng.choice(TIMES),
            "day": rng.choice(DAYS),
            "item": rng.choice(ITEMS),
            "meal": rng.choice(MEALS),
            "thing": rng.choice(THINGS),
        }
        rows.append(
            {
                "id": f"sample-{index:04d}",
                "dialogue": "\n".join(line.format(**slots) for line in lines),
                "summary": summary.format(**slots),
            }
        )
    return rows


def bio_qa_rows(people: int = 40, seed: int = 11) -> list[dict[str, str]]:
    """Questions and answers about invented people."""
    rng = random.Random(seed)
    rows = []
    for index in range(people):
        person = {
            "name": f"{NAMES[index % len(NAMES)]} {SURNAMES[index % len(SURNAMES)]}",
            "city": rng.choice(CITIES),
            "profession": rng.choice(PROFESSIONS),
            "year": str(rng.randint(1900, 1990)),
        }
        for question, answer in QUESTIONS:
            rows.append({"question": question.format(**person), "answer": answer.format(**person)})
    return rows


def sample_rows(name: str) -> list[dict[str, str]]:
    """The rows of a bundled sample by name."""
    if name == "samsum":
        return samsum_rows()
    if name == "bio-qa":
        return bio_qa_rows()
    raise DataError(f"unknown sample {name!r}; choose one of: {', '.join(SAMPLES)}")


def write_sample(name: str, path: str | Path) -> Path:
    """Write a bundled sample as JSONL and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in sample_rows(name):
            handle.write(json.dumps(row) + "\n")
    return path


def sample_text() -> str:
    """All sample text, for training the tiny models' tokenizers."""
    parts = [row["dialogue"] + "\n" + row["summary"] for row in samsum_rows()]
    parts += [row["question"] + "\n" + row["answer"] for row in bio_qa_rows()]
    return "\n".join(parts)
