"""French text normalised for full-text search: the same stems for the indexed text and the query.

Lowercase, accents folded (NFKD, combining marks dropped, ligatures œ/æ spelled out), words are
runs of letters and digits, French stop words dropped, then the French Snowball stemmer, so that
« Allergies » finds « allergie », « hemoglobine » finds « hémoglobine » and « diabétique » finds
« diabète ». Pure: no database, no keys (the index hashes these stems: dmp.services.fulltext).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, cast

import snowballstemmer

_WORD = re.compile(r"[^\W_]+")
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ß": "ss"})
MAX_WORD = 40  # longer runs (hashes, base64 debris) are not words anyone searches for

# Snowball's French stop list, folded (the words carry no meaning a search could use).
_STOP_LIST = """
a ai aie aient aies ait as au aura aurai auraient aurais aurait auras aurez auriez aurions aurons
auront aux avaient avais avait avec avez aviez avions avons ayant ayez ayons c ce ceci cela celle
celles celui ces cet cette d dans de des du elle elles en es est et etaient etais etait etant ete
etes etiez etions etre eu eue eues eumes eurent eus eusse eussent eusses eussiez eussions eut eutes
eux fumes furent fus fusse fussent fusses fussiez fussions fut futes ici il ils j je l la le les
leur leurs lui m ma mais me meme mes moi mon n ne nos notre nous on ont ou par pas pour qu que
quel quelle quelles quels qui s sa sans se sera serai seraient serais serait seras serez seriez
serions serons seront ses si soi soient sois soit sommes son sont soyez soyons suis sur t ta te
tes toi ton tu un une vos votre vous y
"""
STOP_WORDS = frozenset(_STOP_LIST.split())


@dataclass(frozen=True)
class Word:
    start: int  # span of the word in the original text
    end: int
    stem: str | None  # None: a stop word or noise, neither indexed nor highlighted


def fold(text: str) -> str:
    """Lowercase without accents: « Hémoglobine Œdème » → « hemoglobine oedeme »."""
    decomposed = unicodedata.normalize("NFKD", text.lower().translate(_LIGATURES))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class _Stemmer(Protocol):
    def stemWord(self, word: str) -> str: ...  # noqa: N802 (the package's name)


@lru_cache(maxsize=1)
def _stemmer() -> _Stemmer:
    return cast(_Stemmer, snowballstemmer.stemmer("french"))


@lru_cache(maxsize=65536)
def stem(word: str) -> str | None:
    """The stem of one word as written (None for a stop word or noise)."""
    folded = fold(word)
    if not folded or len(folded) > MAX_WORD or folded in STOP_WORDS:
        return None
    if len(folded) == 1 and not folded.isdigit():
        return None
    return _stemmer().stemWord(folded)


def words(text: str) -> Iterator[Word]:
    """Every word of ``text`` with its span and stem (for highlighting in the original text)."""
    for m in _WORD.finditer(text):
        yield Word(m.start(), m.end(), stem(m.group()))


def stems(text: str) -> list[str]:
    """The stems of ``text`` in order, stop words dropped."""
    return [s for w in _WORD.findall(text) if (s := stem(w)) is not None]


def term_frequencies(text: str) -> Counter[str]:
    return Counter(stems(text))


def query_stems(query: str) -> list[str]:
    """The distinct stems of a query, in the order written (every one must match)."""
    return list(dict.fromkeys(stems(query)))
