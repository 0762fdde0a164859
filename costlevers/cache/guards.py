"""Cheap text guards: the differences a sentence embedding glosses over but that change the answer.

"How do I lose weight?" and "How do I not lose weight?" sit at cosine ~0.9 under
all-MiniLM-L6-v2; so do questions that differ only in a number, a year, a name, the question
word ("why" vs "how") or the direction ("USD to INR" vs "INR to USD"). A semantic cache that
answers one with the other is wrong in a way users notice. Each guard here is a few regexes
and set operations over a :class:`TextProfile` built once per text (so a query compared with
five candidates is profiled once), and each yields a feature for the hit verifier rather than a
hard veto: the verifier learns from labelled pairs how much each mismatch matters.

Named entities are found without a tagger (no spaCy in the serving image): capitalised tokens
not at a sentence start, acronyms, and tokens with digits; an entity of one text that appears
in the other in any case counts as shared, because users often type names in lower case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["GUARD_NAMES", "TextProfile", "guard_values", "guards", "profile"]

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?|[$€£₹%]")
_CASED_TOKEN = re.compile(r"[^\W\d_][\w&\-']*|\d[\d,.]*[^\W\d_]*")
_SENTENCE_END = re.compile(r"[.?!:;\"(]\s*$")
_YEAR = re.compile(r"^(1[5-9]\d\d|20\d\d|\d\d(?:'?s))$")

_NEGATIONS = frozenset(
    "not no never none nobody nothing neither nor without cannot cant dont doesnt didnt isnt arent wasnt werent "
    "wont wouldnt shouldnt couldnt hasnt havent hadnt aint nowhere".split()
)
_QUESTION_WORDS = ("what", "why", "how", "when", "who", "whom", "whose", "which", "where")
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
} | {
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "thousand": "1000", "million": "1e6", "billion": "1e9", "lakh": "1e5", "crore": "1e7",
    "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5", "half": "0.5", "once": "1", "twice": "2",
}
_MONTHS_DAYS = frozenset(
    "january february march april may june july august september october november december jan feb mar apr jun "
    "jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday today tomorrow "
    "yesterday".split()
) - {"may", "march"}  # "may" and "march" are mostly verbs in questions
_ANTONYMS = dict(
    pair
    for a, b in [
        ("best", "worst"), ("good", "bad"), ("better", "worse"), ("increase", "decrease"), ("buy", "sell"),
        ("before", "after"), ("advantages", "disadvantages"), ("pros", "cons"), ("male", "female"), ("men", "women"),
        ("man", "woman"), ("boy", "girl"), ("rich", "poor"), ("start", "stop"), ("win", "lose"), ("love", "hate"),
        ("most", "least"), ("more", "less"), ("easy", "hard"), ("gain", "lose"), ("high", "low"), ("cheap", "expensive"),
        ("true", "false"), ("positive", "negative"), ("young", "old"), ("fast", "slow"),
        ("big", "small"), ("long", "short"), ("legal", "illegal"), ("safe", "dangerous"), ("import", "export"),
        ("inside", "outside"), ("open", "close"), ("dislike", "like"),
        ("agree", "disagree"), ("possible", "impossible"), ("happy", "sad"), ("success", "failure"),
        ("upload", "download"), ("online", "offline"), ("private", "public"), ("pass", "fail"), ("add", "remove"),
        ("always", "never"), ("everyone", "nobody"), ("friend", "enemy"), ("north", "south"),
        ("east", "west"), ("hot", "cold"), ("teacher", "student"), ("employer", "employee"), ("borrow", "lend"),
    ]
    for pair in ((a, b), (b, a))
)
STOPWORDS = frozenset(
    "a an the is are was were be been being am do does did doing have has had having i me my we our you your he "
    "she it its they them their this that these those of in on at to for from by with about as into over under "
    "and or but if then so than too very can could should would will shall may might must what why how when who "
    "whom whose which where there here some any all each every one get got getting make made s t just also ever "
    "much many quora".split()
) - _NEGATIONS

#: Order of :func:`guard_values`; each is 0 when the two texts agree on that point.
GUARD_NAMES = (
    "negation_mismatch", "number_mismatch", "number_extra", "entity_mismatch", "entity_extra", "date_mismatch",
    "question_word_mismatch", "antonym", "order_reversed",
)


@dataclass(frozen=True, slots=True)
class TextProfile:
    """What the guards and the verifier's lexical features need from one text, computed once."""

    words: tuple[str, ...]
    content: tuple[str, ...]
    word_set: frozenset[str]
    content_set: frozenset[str]
    bigrams: frozenset[tuple[str, str]]
    char3: frozenset[str]
    negations: int
    numbers: frozenset[str]
    dates: frozenset[str]
    entities: frozenset[str]
    question_word: str
    question_words: frozenset[str]
    chars: int


def _numbers(words: tuple[str, ...]) -> frozenset[str]:
    out = set()
    for w in words:
        if w[0].isdigit():
            out.add(w.replace(",", "").rstrip("."))
        elif w in _NUMBER_WORDS:
            out.add(_NUMBER_WORDS[w])
    return frozenset(out)


def _entities(text: str) -> frozenset[str]:
    """Capitalised tokens not at a sentence start, acronyms, mixed-case names and codes, lower-cased."""
    out = set()
    for m in _CASED_TOKEN.finditer(text):
        tok = m.group().strip(".'-")
        if len(tok) < 2 or tok.lower() in STOPWORDS:
            continue
        acronym = sum(c.isupper() for c in tok) >= 2
        code = any(c.isdigit() for c in tok) and any(c.isalpha() for c in tok)
        mixed_case = any(c.isupper() for c in tok[1:])  # iPhone, PayPal, McDonald's
        sentence_start = m.start() == 0 or bool(_SENTENCE_END.search(text[: m.start()]))
        if acronym or code or mixed_case or (tok[0].isupper() and not sentence_start):
            out.add(tok.lower())
    return frozenset(out)


@lru_cache(maxsize=65536)
def profile(text: str) -> TextProfile:
    """Tokenise and extract once; memoised because a cached entry is compared with many queries."""
    lower = text.lower().replace("’", "'")
    words = tuple(w.replace("n't", "nt").replace("'", "") for w in _WORD.findall(lower))
    content = tuple(w for w in words if w not in STOPWORDS)
    squashed = " ".join(words)
    question_words = frozenset(w for w in words if w in _QUESTION_WORDS)
    return TextProfile(
        words=words,
        content=content,
        word_set=frozenset(words),
        content_set=frozenset(content),
        bigrams=frozenset(zip(words, words[1:])),
        char3=frozenset(squashed[i : i + 3] for i in range(max(len(squashed) - 2, 1))),
        negations=sum(w in _NEGATIONS for w in words),
        numbers=_numbers(words),
        dates=frozenset(w for w in words if w in _MONTHS_DAYS or _YEAR.match(w)),
        entities=_entities(text),
        question_word=next((w for w in words if w in _QUESTION_WORDS), ""),
        question_words=question_words,
        chars=len(text),
    )


def _order_reversed(a: TextProfile, b: TextProfile) -> float:
    """Share of shared content-word pairs whose order flips ("USD to INR" vs "INR to USD")."""
    shared = [w for w in dict.fromkeys(a.content) if w in b.content_set]
    if len(shared) < 2:
        return 0.0
    pos_b = {w: b.content.index(w) for w in shared}
    flips = total = 0
    for i in range(len(shared)):
        for j in range(i + 1, len(shared)):
            total += 1
            flips += pos_b[shared[i]] > pos_b[shared[j]]
    return flips / total


def guard_values(a: TextProfile, b: TextProfile) -> tuple[float, ...]:
    """The guards in :data:`GUARD_NAMES` order, symmetric in ``a`` and ``b``; 0 means "no difference seen"."""
    num_diff = a.numbers ^ b.numbers
    # An entity counts as missing only if the other text lacks it in every case and spelling we see.
    ent_a = {e for e in a.entities if e not in b.word_set and e not in b.entities}
    ent_b = {e for e in b.entities if e not in a.word_set and e not in a.entities}
    date_diff = a.dates ^ b.dates
    antonym = any(
        _ANTONYMS.get(w) in b.word_set and _ANTONYMS[w] not in a.word_set and w not in b.word_set
        for w in a.word_set if w in _ANTONYMS
    )
    return (
        float((a.negations > 0) != (b.negations > 0)),
        float(bool(num_diff) and bool(a.numbers) and bool(b.numbers)),
        float(bool(num_diff) and not (a.numbers and b.numbers)),
        float(bool(ent_a) and bool(ent_b)),
        float(len(ent_a) + len(ent_b)),
        float(bool(date_diff)),
        float(bool(a.question_word) and bool(b.question_word) and a.question_word != b.question_word),
        float(antonym),
        _order_reversed(a, b),
    )


def guards(text_a: str, text_b: str) -> dict[str, float]:
    """The guards by name, for explanations and tests."""
    return dict(zip(GUARD_NAMES, guard_values(profile(text_a), profile(text_b))))
