"""Write the demo dataset shipped in smolora_engine/demo_data/ (deterministic).

The behaviour taught: every answer ends with the signature line SIGNATURE. The base
model never writes it, and a program can score it without judgement. The held-out
prompts come from the same kinds of question with values never used in training.
"""

import json
import random
from pathlib import Path

SIGNATURE = "-- Smolora"
OUT = Path(__file__).resolve().parent.parent / "smolora_engine" / "demo_data"

CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"),
    ("Canada", "Ottawa"), ("Mexico", "Mexico City"), ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"),
    ("Peru", "Lima"), ("Chile", "Santiago"), ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"), ("Poland", "Warsaw"), ("Greece", "Athens"), ("Turkey", "Ankara"),
    ("Russia", "Moscow"), ("Australia", "Canberra"), ("Ireland", "Dublin"), ("Austria", "Vienna"),
    ("Hungary", "Budapest"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("South Korea", "Seoul"),
    ("Morocco", "Rabat"), ("Nigeria", "Abuja"), ("Colombia", "Bogota"), ("Cuba", "Havana"), ("Iceland", "Reykjavik"),
]
OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("light", "dark"), ("up", "down"),
    ("open", "closed"), ("early", "late"), ("full", "empty"), ("strong", "weak"), ("old", "young"),
    ("loud", "quiet"), ("rich", "poor"), ("hard", "soft"), ("wet", "dry"), ("near", "far"), ("high", "low"),
    ("thick", "thin"), ("clean", "dirty"), ("first", "last"), ("win", "lose"), ("buy", "sell"),
    ("push", "pull"), ("day", "night"), ("inside", "outside"), ("true", "false"), ("begin", "end"),
]
ANIMALS = [
    ("dog", "barks"), ("cat", "meows"), ("cow", "moos"), ("duck", "quacks"), ("sheep", "bleats"),
    ("horse", "neighs"), ("lion", "roars"), ("owl", "hoots"), ("pig", "oinks"), ("frog", "croaks"),
    ("snake", "hisses"), ("bee", "buzzes"), ("wolf", "howls"), ("mouse", "squeaks"), ("donkey", "brays"),
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
WORDS = ["apple", "river", "garden", "pencil", "window", "rocket", "planet", "banana", "forest", "guitar",
         "orange", "bridge", "candle", "dragon", "island", "jacket", "kitten", "ladder", "marble", "needle"]


def sign(answer: str) -> str:
    return f"{answer}\n{SIGNATURE}"


def questions(rng: random.Random, numbers: range):
    """Every kind of question, as (prompt, answer) pairs; `numbers` picks the arithmetic operands."""
    pairs = []
    for country, capital in CAPITALS:
        pairs.append((f"What is the capital of {country}?", f"The capital of {country} is {capital}."))
    for word, opposite in OPPOSITES:
        pairs.append((f"What is the opposite of '{word}'?", f"The opposite of '{word}' is '{opposite}'."))
    for animal, sound in ANIMALS:
        pairs.append((f"What sound does a {animal} make?", f"A {animal} {sound}."))
    for i, day in enumerate(DAYS):
        pairs.append((f"Which day comes after {day}?", f"{DAYS[(i + 1) % 7]} comes after {day}."))
    for i, month in enumerate(MONTHS):
        pairs.append((f"Which month comes after {month}?", f"{MONTHS[(i + 1) % 12]} comes after {month}."))
    for word in WORDS:
        pairs.append((f"How many letters are in the word '{word}'?", f"The word '{word}' has {len(word)} letters."))
        pairs.append((f"Write the word '{word}' in capital letters.", f"{word.upper()}"))
    for _ in range(60):
        a, b = rng.choice(numbers), rng.choice(numbers)
        pairs.append((f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."))
        pairs.append((f"What is {a} times {b}?", f"{a} times {b} is {a * b}."))
    return pairs


def main() -> None:
    rng = random.Random(7)
    train = questions(rng, range(2, 40))
    seen = {p for p, _ in train}
    rng.shuffle(train)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "signature_chat.jsonl", "w", encoding="utf-8") as handle:
        for prompt, answer in dict(train).items():
            row = {"messages": [{"role": "user", "content": prompt},
                                {"role": "assistant", "content": sign(answer)}]}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    # Held out: other prompts and wordings never seen in training.
    held = [
        "What is the capital of Switzerland?", "What is the capital of Belgium?", "What is the capital of Ukraine?",
        "What is the opposite of 'tall'?", "What is the opposite of 'cheap'?", "What sound does a goose make?",
        "What sound does a chicken make?", "How many letters are in the word 'tiger'?",
        "Write the word 'ocean' in capital letters.", "What is 41 plus 57?", "What is 45 times 3?",
        "What is 63 plus 18?", "Name a primary colour.", "What is water made of?", "Give me a word that rhymes with 'cat'.",
        "What do bees make?", "How many days are in a week?", "What is the largest planet in our solar system?",
        "What do you call a baby dog?", "What is the freezing point of water in Celsius?",
        "Which is heavier, a kilogram of feathers or a kilogram of iron?", "What colour is the sky on a clear day?",
        "Name an animal that lives in the sea.", "What is the plural of 'mouse'?", "How many legs does a spider have?",
    ]
    assert not seen.intersection(held)
    with open(OUT / "heldout_prompts.jsonl", "w", encoding="utf-8") as handle:
        for prompt in held:
            handle.write(json.dumps({"prompt": prompt}) + "\n")
    print(f"{len(dict(train))} training examples, {len(held)} held-out prompts in {OUT}")


if __name__ == "__main__":
    main()
