"""The embedded seq2seq task: a toy-grammar sentence → the same sentence in the passive voice.

Only transitive sentences (``TAKE`` and ``GIVE`` verbs) are used: "the farmer saw a dog ." →
"a dog was seen by the farmer ."; "the king sold a ship to the queen ." → "a ship was sold to
the queen by the king .". The mapping is deterministic, so a perfect model reaches BLEU 1.
The splits are fixed: test and valid hold distinct sources, and no train source occurs in
either of them.
"""

from __future__ import annotations

import functools
import random

from corpora import toy

PARTICIPLES = {
    "saw": "seen", "found": "found", "liked": "liked", "bought": "bought",
    "painted": "painted", "carried": "carried", "sold": "sold", "gave": "given",
    "sent": "sent", "showed": "shown", "brought": "brought", "handed": "handed",
    "offered": "offered", "lent": "lent",
}  # fmt: skip
SPLIT_SIZES = {"test": 200, "valid": 500, "train": 20000}
SEED = 20221129


def passive(sentence: str) -> str:
    """The passive voice of a transitive toy sentence (ValueError for any other sentence)."""
    words = toy.words_of(sentence)
    verbs = [i for i, w in enumerate(words) if toy.WORD_CLASS.get(w) in ("TAKE", "GIVE")]
    if not verbs or words[-1] != ".":
        raise ValueError(f"not a transitive toy sentence: {sentence!r}")
    verb = verbs[0]
    subject, rest = words[:verb], words[verb + 1 : -1]
    if "to" in rest:
        to = rest.index("to")
        obj, tail = rest[:to], ["to", *rest[to + 1 :]]
    else:
        obj, tail = rest, []
    return " ".join([*obj, "was", PARTICIPLES[words[verb]], *tail, "by", *subject, "."])


def _transitive(rng: random.Random) -> str:
    while True:
        sentence = toy.sample_sentence(rng)
        if any(toy.WORD_CLASS.get(w) in ("TAKE", "GIVE") for w in sentence.split()):
            return sentence


@functools.cache
def _all_splits() -> dict[str, list[str]]:
    rng = random.Random(SEED)
    held_out: set[str] = set()
    splits: dict[str, list[str]] = {}
    for name in ("test", "valid"):
        chosen: list[str] = []
        while len(chosen) < SPLIT_SIZES[name]:
            sentence = _transitive(rng)
            if sentence not in held_out:
                held_out.add(sentence)
                chosen.append(sentence)
        splits[name] = chosen
    train: list[str] = []
    while len(train) < SPLIT_SIZES["train"]:
        sentence = _transitive(rng)
        if sentence not in held_out:
            train.append(sentence)
    splits["train"] = train
    return splits


def pairs(split: str) -> dict[str, list[str]]:
    """``{"src": [...], "trg": [...]}`` of the fixed ``train`` / ``valid`` / ``test`` split."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"toy task split {split!r} is unknown: choose {', '.join(SPLIT_SIZES)}")
    sources = list(_all_splits()[split])
    return {"src": sources, "trg": [passive(s) for s in sources]}
