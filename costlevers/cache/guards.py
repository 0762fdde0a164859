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

__all__ = ["GUARD_NAMES", "TextProfile", "guard_values", "guards", "profile", "stem"]

_WORD = re.compile(r"[^\W_]+|[$€£₹%]")
_CASED_TOKEN = re.compile(r"[^\W\d_][\w&\-']*|\d[\d,.]*[^\W\d_]*")
_CONTRACTIONS = {
    "can't": "can not", "won't": "will not", "n't": " not", "'re": " are", "'ll": " will", "'ve": " have", "'m": " am",
    "'d": " would", "what's": "what is", "who's": "who is", "where's": "where is", "how's": "how is", "when's": "when is",
    "why's": "why is", "that's": "that is", "it's": "it is", "there's": "there is", "he's": "he is", "she's": "she is",
    "'s": "", "'": "",
}
_CONTRACTION = re.compile("|".join(re.escape(c) for c in sorted(_CONTRACTIONS, key=len, reverse=True)))
#: Words whose two sides cannot swap without changing the question ("USD to INR", "Java better than Python").
_DIRECTIONAL = frozenset("to into than vs versus from over".split())
_SENTENCE_ENDS = frozenset(".?!:;\"(")
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
#: Words that point at something outside the text ("this circuit", "the following code"): two such
#: questions can read the same and still be about different things.
_CONTEXT_REFERENCES = frozenset(
    "this these above following attached picture pic pics image images photo photos screenshot video link graph "
    "diagram figure".split()
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
    "question_word_mismatch", "antonym", "order_reversed", "direction_reversed", "plural_mismatch", "context_reference",
)


@dataclass(frozen=True, slots=True)
class TextProfile:
    """What the guards and the verifier's lexical features need from one text, computed once."""

    words: tuple[str, ...]
    content: tuple[str, ...]
    stems: frozenset[str]
    word_set: frozenset[str]
    content_set: frozenset[str]
    bigrams: frozenset[tuple[str, str]]
    char3: frozenset[str]
    negations: int
    context_references: int
    numbers: frozenset[str]
    dates: frozenset[str]
    entities: frozenset[str]
    question_word: str
    directions: frozenset[tuple[str, str, str]]
    chars: int


def stem(word: str) -> str:
    """A crude plural strip ("songs" -> "song"): enough to tell "song" vs "songs" from a different word."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


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
        tok = m.group().strip("'-")
        if len(tok) < 2 or (tok.islower() and tok.isalpha()) or not any(c.isalpha() for c in tok):
            continue  # a plain lower-case word, or a bare number (the number guards see those)
        lower = tok.lower()
        if lower in STOPWORDS:
            continue
        # A code (800B0100, i7, 2nd), an acronym (NASA) or a mixed-case name (iPhone, McDonald's).
        if any(c.isdigit() for c in tok) or any(c.isupper() for c in tok[1:]):
            out.add(lower)
            continue
        before = text[: m.start()].rstrip()
        if tok[0].isupper() and before and before[-1] not in _SENTENCE_ENDS:
            out.add(lower)
    return frozenset(out)


def _directions(words: tuple[str, ...]) -> frozenset[tuple[str, str, str]]:
    """(content word before, directional word, content word after) for each directional word."""
    out = set()
    for i, w in enumerate(words):
        if w in _DIRECTIONAL:
            left = next((x for x in reversed(words[:i]) if x not in STOPWORDS and x not in _DIRECTIONAL), None)
            right = next((x for x in words[i + 1 :] if x not in STOPWORDS and x not in _DIRECTIONAL), None)
            if left and right and left != right:
                out.add((left, w, right))
    return frozenset(out)


@lru_cache(maxsize=65536)
def profile(text: str) -> TextProfile:
    """Tokenise and extract once; memoised because a cached entry is compared with many queries."""
    expanded = _CONTRACTION.sub(lambda m: _CONTRACTIONS[m.group()], text.lower().replace("’", "'"))
    words = tuple(_WORD.findall(expanded))
    word_set = frozenset(words)
    content = tuple(w for w in words if w not in STOPWORDS)
    squashed = " ".join(words)
    return TextProfile(
        words=words,
        content=content,
        stems=frozenset([stem(w) for w in content]),
        word_set=word_set,
        content_set=frozenset(content),
        bigrams=frozenset(zip(words, words[1:])),
        char3=frozenset([squashed[i : i + 3] for i in range(max(len(squashed) - 2, 1))]),
        negations=len(word_set & _NEGATIONS),
        context_references=len(word_set & _CONTEXT_REFERENCES),
        numbers=_numbers(words),
        dates=(word_set & _MONTHS_DAYS) | {w for w in word_set if w[0].isdigit() and _YEAR.match(w)},
        entities=_entities(text),
        question_word=next((w for w in words if w in _QUESTION_WORDS), ""),
        directions=_directions(words),
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
        float(any((y, c, x) in b.directions for x, c, y in a.directions)),
        float(any(stem(w) in b.stems for w in a.content_set - b.content_set)
              or any(stem(w) in a.stems for w in b.content_set - a.content_set)),
        float(max(a.context_references, b.context_references) > 0),
    )


def guards(text_a: str, text_b: str) -> dict[str, float]:
    """The guards by name, for explanations and tests."""
    return dict(zip(GUARD_NAMES, guard_values(profile(text_a), profile(text_b))))
