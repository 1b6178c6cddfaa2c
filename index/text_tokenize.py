"""Terms for BM25: one `tokenize` for documents and queries alike, English and Chinese.

Design:

- NFKC-normalise (full-width letters and digits become ASCII) and lowercase, then split the text
  into runs of Han characters and runs of other word characters; everything else separates.
- Non-Han runs: a token is letters/digits joined by internal ``.`` or ``_`` ("3.2.0", "api_key",
  "tls1.2", "v2.1"), so identifiers and versions can be matched exactly. A joined token is kept
  whole *and* split into its parts that are not bare numbers (``api_key`` -> ``api_key``, ``api``,
  ``key``; ``tls1.2`` -> ``tls1.2``, ``tls1``; ``3.2.0`` stays one term), so "key" still finds
  "api_key" while "3" does not match every version string. Hyphens and other punctuation
  separate words. Pure ASCII alphabetic words are dropped if they are English stopwords
  (`text.stopwords`, as are the Chinese function words below) and
  otherwise Snowball-stemmed ("deploying", "deploys" and "deployment" all become ``deploy``);
  tokens with digits, and whole joined tokens, are not stemmed.
- Han runs are first folded from traditional onto simplified script, character by character
  (`text.chinese_script.simplify_chars`: one ``str.translate`` with a table built once from
  OpenCC's character table), so a traditional query finds a simplified passage and the reverse,
  and jieba, whose dictionary is simplified, segments traditional text as well. The fold is not
  phrase-level on purpose: every character gets one image whatever surrounds it, in a query as
  in a passage.
- Han runs: jieba's segmentation depends on context, so a word can be cut one way in a query and
  another in a passage: "保留期" alone is 保留/期, inside "数据保留期为90天" it is 保留/期为, so
  word tokens alone would miss. We therefore emit overlapping character *bigrams* over each run
  (as Lucene's CJK analyzer does): any query word of two or more characters that occurs as a
  substring of a passage yields bigrams that all occur in the passage, whatever jieba did. On top
  of the bigrams, `cut_for_search` words of three or more characters (数据库, 共和国) reward exact
  longer words, and single-character words that jieba cuts out standalone (天, 库) are kept unless
  they are function words (的, 是, 在...). Those function words also split the run before bigrams
  are taken, so "的回滚流程" gives 回滚/滚流/流程 and not the noise bigram 的回. Two-character
  jieba words are not emitted: each one is already one of the run's bigrams.
  Concession: a single-character query only finds passages where jieba cut that character out on
  its own, not where it sits inside a longer word.

jieba runs as a private `jieba.Tokenizer`, loaded lazily once under a lock; its dictionary cache
goes to the system temp dir (never the repo or ~). PyStemmer's stemmer is not thread-safe, so each
thread gets its own.
"""

from __future__ import annotations

import functools
import logging
import re
import tempfile
import threading
import unicodedata
import warnings
from typing import Any

from text.chinese_script import simplify_chars
from text.script import HAN
from text.stopwords import CHINESE_STOPWORDS, ENGLISH_STOPWORDS

logger = logging.getLogger(__name__)

# Bump when the output of `tokenize` changes: stored postings made by another version are stale.
TOKENIZER_VERSION = "2"  # 2: Han folded onto simplified script

_RUN = re.compile(rf"([{HAN}]+)|([^\W{HAN}]+(?:[._][^\W_{HAN}]+)*)")
_PART = re.compile(r"[^\W_]+")

_jieba_lock = threading.Lock()
_jieba: Any = None
_local = threading.local()


def _segmenter() -> Any:
    """The shared jieba tokenizer, built on first use (about a second, once per process)."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                with warnings.catch_warnings():  # jieba imports the deprecated pkg_resources
                    warnings.simplefilter("ignore")
                    import jieba
                jieba.setLogLevel(logging.WARNING)
                seg = jieba.Tokenizer()
                seg.tmp_dir = tempfile.gettempdir()
                seg.cache_file = f"docqa-jieba-{jieba.__version__}.cache"
                seg.initialize()
                logger.debug("jieba loaded, cache in %s", seg.tmp_dir)
                _jieba = seg
    return _jieba


def _stem(word: str) -> str:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return str(stemmer.stemWord(word))


@functools.lru_cache(maxsize=65536)  # words repeat (Zipf): most lookups skip the work below
def _word_terms(token: str) -> tuple[str, ...]:
    """Terms of one non-Han token, e.g. ``api_keys`` -> ``api_keys``, ``api``, ``key``."""
    parts = _PART.findall(token)
    whole: tuple[str, ...] = ()
    if len(parts) > 1:  # a joined token: keep it whole, plus its parts that are not bare numbers
        whole = (token,)
        parts = [p for p in parts if not p.isdigit()]
    terms = []
    for part in parts:
        if part.isascii() and part.isalpha():
            if part in ENGLISH_STOPWORDS:
                continue
            part = _stem(part)
        terms.append(part)
    return whole + tuple(terms)


def _han_terms(run: str) -> list[str]:
    """Terms of one run of Han characters: bigrams, plus jieba words of 1 or 3+ characters."""
    seg = _segmenter()
    out: list[str] = []
    pieces = [""]
    for word in seg.cut(run):
        if len(word) == 1 and word in CHINESE_STOPWORDS:
            pieces.append("")
            continue
        pieces[-1] += word
        if len(word) != 2:
            out.append(word)
        # What `cut_for_search` adds: dictionary words of three characters inside longer words.
        if len(word) > 3:
            out.extend(g for i in range(len(word) - 2) if seg.FREQ.get(g := word[i : i + 3]))
    for piece in pieces:
        out.extend(piece[i : i + 2] for i in range(len(piece) - 1))
    return out


def tokenize(text: str) -> list[str]:
    """BM25 terms of ``text``, with repeats (their order carries no meaning).

    >>> tokenize("Deploying Orbit 3.2.0 的回滚流程")
    ['deploy', 'orbit', '3.2.0', '回滚', '滚流', '流程']
    >>> tokenize("的回滾流程") == tokenize("的回滚流程")
    True
    """
    text = unicodedata.normalize("NFKC", text).lower()
    terms: list[str] = []
    for match in _RUN.finditer(text):
        han, word = match.groups()
        terms.extend(_han_terms(simplify_chars(han)) if han else _word_terms(word))
    return terms
