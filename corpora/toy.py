"""A small probabilistic English grammar: the embedded toy corpus with exact probabilities.

S → NP VP "."; NP → DET [ADJ] NOUN; VP → GIVE NP "to" NP | TAKE NP | REST [ADV].
Every word belongs to exactly one class, so each sentence has one derivation and its
probability is the product of the choices made: ``log_prob`` is exact, ``entropy`` is the
exact entropy of the sentence distribution. Words are drawn with Zipf weights (p ∝ 1/rank),
which gives the spindle schedule real frequency differences to work with.
"""

from __future__ import annotations

import math
import random

CLASSES: dict[str, tuple[str, ...]] = {
    "DET": ("the", "a"),
    "NOUN": (
        "farmer",
        "baker",
        "teacher",
        "doctor",
        "sailor",
        "king",
        "queen",
        "child",
        "girl",
        "boy",
        "horse",
        "dog",
        "cat",
        "bird",
        "cow",
        "fish",
        "apple",
        "book",
        "letter",
        "ship",
        "house",
        "garden",
        "river",
    ),
    "ADJ": (
        "old",
        "young",
        "red",
        "small",
        "big",
        "happy",
        "quiet",
        "brave",
        "green",
        "tall",
        "poor",
        "clever",
        "angry",
    ),
    "GIVE": ("sold", "gave", "sent", "showed", "brought", "handed", "offered", "lent"),
    "TAKE": ("saw", "found", "liked", "bought", "painted", "carried"),
    "REST": ("slept", "laughed", "arrived", "waited", "danced", "smiled"),
    "ADV": ("slowly", "quickly", "today", "again", "early", "quietly"),
}
P_DET = {"the": 0.6, "a": 0.4}
P_ADJ = 0.35
P_ADV = 0.5
P_VP = {"GIVE": 0.4, "TAKE": 0.35, "REST": 0.25}
SPLIT_SIZES = {"train": 60000, "validation": 2000, "test": 2000}
SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}


def zipf(words: tuple[str, ...]) -> dict[str, float]:
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    total = sum(weights)
    return {word: weight / total for word, weight in zip(words, weights, strict=True)}


WORD_PROBS = {name: zipf(words) for name, words in CLASSES.items() if name != "DET"}
WORD_PROBS["DET"] = P_DET
WORD_CLASS = {word: name for name, words in CLASSES.items() for word in words}


def _entropy(probs) -> float:
    return -sum(p * math.log(p) for p in probs if p > 0)


def _draw(rng: random.Random, probs: dict[str, float]) -> str:
    return rng.choices(list(probs), weights=list(probs.values()))[0]


def _noun_phrase(rng: random.Random) -> list[str]:
    words = [_draw(rng, P_DET)]
    if rng.random() < P_ADJ:
        words.append(_draw(rng, WORD_PROBS["ADJ"]))
    return [*words, _draw(rng, WORD_PROBS["NOUN"])]


def sample_sentence(rng: random.Random) -> str:
    words = _noun_phrase(rng)
    kind = _draw(rng, P_VP)
    words.append(_draw(rng, WORD_PROBS[kind]))
    if kind == "GIVE":
        words += [*_noun_phrase(rng), "to", *_noun_phrase(rng)]
    elif kind == "TAKE":
        words += _noun_phrase(rng)
    elif rng.random() < P_ADV:
        words.append(_draw(rng, WORD_PROBS["ADV"]))
    return " ".join([*words, "."])


def sample(n: int, seed: int) -> list[str]:
    """``n`` sentences, deterministic for a seed."""
    rng = random.Random(seed)
    return [sample_sentence(rng) for _ in range(n)]


def split(name: str) -> list[str]:
    """The fixed ``train`` / ``validation`` / ``test`` split of the toy corpus."""
    if name not in SPLIT_SIZES:
        raise ValueError(f"toy corpus split {name!r} is unknown: choose {', '.join(SPLIT_SIZES)}")
    return sample(SPLIT_SIZES[name], SPLIT_SEEDS[name])


def words_of(sentence: str) -> list[str]:
    """Lower-cased, whitespace-separated words with full stops split off ('baker.' parses)."""
    return sentence.lower().replace(".", " . ").split()


def log_prob(sentence: str) -> float:
    """Exact log-probability (nats) of a sentence under the grammar; −inf if it cannot occur."""
    words = words_of(sentence)
    position = 0
    total = 0.0

    def take(name: str) -> bool:
        nonlocal position, total
        if position < len(words) and WORD_CLASS.get(words[position]) == name:
            total += math.log(WORD_PROBS[name][words[position]])
            position += 1
            return True
        return False

    def noun_phrase() -> bool:
        nonlocal total
        if not take("DET"):
            return False
        has_adj = take("ADJ")
        total += math.log(P_ADJ if has_adj else 1 - P_ADJ)
        return take("NOUN")

    if not noun_phrase() or position >= len(words):
        return -math.inf
    kind = WORD_CLASS.get(words[position])
    if kind not in P_VP:
        return -math.inf
    total += math.log(P_VP[kind])
    take(kind)
    if kind == "GIVE":
        ok = noun_phrase() and position < len(words) and words[position] == "to"
        position += 1
        ok = ok and noun_phrase()
    elif kind == "TAKE":
        ok = noun_phrase()
    else:
        has_adv = take("ADV")
        total += math.log(P_ADV if has_adv else 1 - P_ADV)
        ok = True
    if not ok or words[position:] != ["."]:
        return -math.inf
    return total


def entropy() -> float:
    """Exact entropy of the sentence distribution, nats per sentence."""
    h = {name: _entropy(probs.values()) for name, probs in WORD_PROBS.items()}
    noun_phrase = h["DET"] + _entropy([P_ADJ, 1 - P_ADJ]) + P_ADJ * h["ADJ"] + h["NOUN"]
    verb_phrase = _entropy(P_VP.values())
    verb_phrase += P_VP["GIVE"] * (h["GIVE"] + 2 * noun_phrase)
    verb_phrase += P_VP["TAKE"] * (h["TAKE"] + noun_phrase)
    verb_phrase += P_VP["REST"] * (h["REST"] + _entropy([P_ADV, 1 - P_ADV]) + P_ADV * h["ADV"])
    return noun_phrase + verb_phrase


def sentence_nll(sentences: list[str]) -> list[float]:
    """Exact −log p of each sentence (inf for one the grammar cannot produce)."""
    return [-log_prob(s) for s in sentences]


def oracle(sentences: list[str]) -> dict[str, float | None]:
    """Share of sentences the grammar can produce and their mean exact NLL (nats)."""
    nll = [x for x in sentence_nll(sentences) if math.isfinite(x)]
    return {
        "toy_grammatical": len(nll) / max(len(sentences), 1),
        "toy_true_nll_per_sentence": sum(nll) / len(nll) if nll else None,
    }
