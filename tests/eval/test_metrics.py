"""Every metric against cases computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import pytest

from eval.metrics import (
    answer_scores,
    citation_precision,
    cmrc_em,
    cmrc_f1,
    cmrc_remove_punctuation,
    cmrc_segment,
    decline_precision_recall,
    dedupe,
    first_relevant_rank,
    hit_at,
    is_chinese,
    longest_common_substring,
    mean,
    mrr_at,
    ndcg_at,
    nearest_rank_percentile,
    percentile,
    squad_em,
    squad_f1,
    squad_normalize,
)


# ----------------------------------------------------------------------------------- SQuAD
@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The Denver Broncos!", "denver broncos"),
        ("  an   Apple, a day ", "apple day"),
        ("Theory of the state", "theory of state"),  # "the" only as a whole word
        ("U.S.-based (1990)", "usbased 1990"),  # punctuation removed, not replaced by a space
    ],
)
def test_squad_normalization(text: str, normalized: str) -> None:
    assert squad_normalize(text) == normalized


def test_squad_exact_match_ignores_case_articles_and_punctuation() -> None:
    assert squad_em("An apple.", "apple") == 1.0
    assert squad_em("apples", "apple") == 0.0


def test_squad_f1_by_hand() -> None:
    # pred "the cat sat on the mat" -> [cat, sat, on, mat]; gold "a cat on a mat" -> [cat, on, mat]
    # common 3: precision 3/4, recall 3/3, F1 = 2 * 0.75 * 1 / 1.75 = 6/7
    assert squad_f1("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7)
    # bag of words: order does not matter, repeats count once per matching occurrence
    # pred [x, y, y] gold [y, x]: common min(1,1)+min(2,1) = 2 -> P 2/3, R 1 -> F1 0.8
    assert squad_f1("x y y", "y x") == pytest.approx(0.8)
    assert squad_f1("nothing shared", "other words") == 0.0
    assert squad_f1("", "answer") == 0.0


# ---------------------------------------------------------------------------------- CMRC 2018
def test_cmrc_segmentation_mixes_characters_and_words() -> None:
    assert cmrc_segment("Orbit 3.4版本，支持blue-green") == [
        *("orbit", "3.4", "版", "本", "，", "支", "持", "blue", "-", "green"),
    ]
    # With punctuation removal a listed mark is skipped *without* ending the run, as in the
    # official script: "ω-force" becomes one token "ωforce".
    assert cmrc_segment("光荣和ω-force", remove_punctuation=True) == ["光", "荣", "和", "ωforce"]


def test_cmrc_f1_uses_the_longest_common_substring() -> None:
    # gold 九十天 -> [九, 十, 天]; pred 部署日志保留九十天 -> 9 tokens; LCS 3
    # precision 3/9, recall 3/3 -> F1 = 2 * (1/3) / (4/3) = 0.5
    assert cmrc_f1("部署日志保留九十天", "九十天") == pytest.approx(0.5)
    # the same characters in another order: a bag-of-characters F1 would be 1; LCS is 1
    # -> precision 1/3, recall 1/3 -> F1 1/3
    assert cmrc_f1("天十九", "九十天") == pytest.approx(1 / 3)
    # gold [光, 荣, 和, ωforce]; pred [光, 荣, 和, ωforce, 合, 作]: LCS 4 -> P 4/6, R 1 -> 0.8
    assert cmrc_f1("光荣和ω-force合作", "光荣和ω-force") == pytest.approx(0.8)
    assert cmrc_f1("完全不同", "九十天") == 0.0


def test_cmrc_exact_match_removes_the_official_punctuation() -> None:
    assert cmrc_em("《战国无双3》", "战国无双3") == 1.0
    assert cmrc_em("九十天。", "九十天") == 1.0
    assert cmrc_em("ABC", "abc") == 1.0  # lowercased
    assert cmrc_em("九十 天", "九十天") == 0.0  # an inner space is not punctuation
    # faithful quirk: the list holds "……" as one entry, so a lone "…" is never removed
    assert cmrc_remove_punctuation("好…") == "好…"


def test_longest_common_substring() -> None:
    assert longest_common_substring(list("abcde"), list("xbcdy")) == 3
    assert longest_common_substring([], list("abc")) == 0


def test_answer_scores_take_the_best_gold_and_pick_the_metric() -> None:
    # English: EM with "25" is 0, with "25 days" 1; F1 max is 1
    assert answer_scores("25 days", ["25", "25 days"], chinese=False) == (1.0, 1.0)
    # Chinese metric on a Chinese question: pred "十五元" vs gold "每餐十五元"
    # gold [每, 餐, 十, 五, 元], pred [十, 五, 元]: LCS 3 -> P 1, R 3/5 -> F1 0.75
    em, f1 = answer_scores("十五元", ["每餐十五元"], chinese=True)
    assert (em, f1) == (0.0, pytest.approx(0.75))
    assert answer_scores("anything", [], chinese=False) == (0.0, 0.0)


def test_language_detection_is_per_question() -> None:
    assert is_chinese("公司食堂每餐补贴多少钱？")
    assert is_chinese("Orbit 的部署日志保留多久？")
    assert not is_chinese("How often do API keys rotate?")


def test_a_question_quoting_a_chinese_term_is_scored_as_english() -> None:
    """The service answers it in English (`text.language`), so it is scored with SQuAD."""
    assert not is_chinese("What does 部署 mean?")
    assert is_chinese("谁负责 Grafana 监控的权限？")


# ---------------------------------------------------------------------------------- retrieval
def test_dedupe_keeps_each_document_at_its_first_rank() -> None:
    assert dedupe(["a", "b", "a", None, "c", "b"]) == ["a", "b", "c"]


def test_hit_and_mrr() -> None:
    ranking = ["d3", "d1", "d2"]
    assert first_relevant_rank(ranking, {"d1"}, 10) == 2
    assert hit_at(ranking, {"d1"}, 1) == 0.0
    assert hit_at(ranking, {"d1"}, 5) == 1.0
    assert mrr_at(ranking, {"d1"}) == 0.5
    assert mrr_at(ranking, {"d1", "d3"}) == 1.0  # the first relevant one counts
    assert mrr_at(["x"] * 10 + ["d1"], {"d1"}, 10) == 0.0  # past rank 10
    assert hit_at([], {"d1"}, 10) == 0.0


def test_ndcg_with_graded_labels_by_hand() -> None:
    # ranking a, b, c, d; grades a=1, c=2, e=1 (e not retrieved)
    # DCG  = 1/log2(2) + 0 + 2/log2(4) + 0 = 1 + 1 = 2
    # IDCG = 2/log2(2) + 1/log2(3) + 1/log2(4) = 2 + 0.6309298 + 0.5 = 3.1309298
    # nDCG = 2 / 3.1309298 = 0.6387879
    assert ndcg_at(["a", "b", "c", "d"], {"a": 1, "c": 2, "e": 1}) == pytest.approx(0.6387879)
    assert ndcg_at(["c", "a", "e"], {"a": 1, "c": 2, "e": 1}) == pytest.approx(1.0)
    assert ndcg_at(["x"], {"a": 1}) == 0.0
    assert ndcg_at(["a"], {}) == 0.0


def test_ndcg_ideal_is_the_judged_relevant_documents_truncated_at_k() -> None:
    # 12 relevant documents, k = 10: the ideal list is the 10 best grades, so a perfect top 10
    # scores 1 although two relevant documents are left out of it
    relevance = {f"d{i}": 1 for i in range(12)}
    assert ndcg_at([f"d{i}" for i in range(10)], relevance, k=10) == pytest.approx(1.0)
    # grades are sorted before truncation: a=3 heads the ideal list wherever it stands in the map
    # DCG  = 1/log2(2) = 1; IDCG@1 = 3/log2(2) = 3
    assert ndcg_at(["b"], {"b": 1, "a": 3}, k=1) == pytest.approx(1 / 3)
    # a judged non-relevant document (grade 0) adds nothing to the ideal list
    assert ndcg_at(["a"], {"a": 1, "z": 0}) == pytest.approx(1.0)


def test_citation_precision() -> None:
    # 4 citations, 2 from gold document a (None: a chunk of no known document)
    assert citation_precision(["a", "b", "a", None], {"a"}) == 0.5
    assert citation_precision([], {"a"}) is None


def test_decline_precision_and_recall() -> None:
    declined = [True, True, False, False, True]
    unanswerable = [True, False, True, False, True]
    # right declines: #0 and #4 = 2; declines 3; unanswerable 3 -> P 2/3, R 2/3
    p, r = decline_precision_recall(declined, unanswerable)
    assert p == pytest.approx(2 / 3)
    assert r == pytest.approx(2 / 3)
    assert decline_precision_recall([False, False], [True, False]) == (None, 0.0)
    assert decline_precision_recall([True], [False]) == (0.0, None)


def test_percentile_interpolates_like_numpy() -> None:
    # p95 of 10, 20, 30, 40: position 3 * 0.95 = 2.85 -> 30 + 0.85 * 10 = 38.5
    assert percentile([40, 10, 30, 20], 50) == 25.0
    assert percentile([40, 10, 30, 20], 95) == pytest.approx(38.5)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_nearest_rank_percentile_is_always_one_of_the_values() -> None:
    # n = 4: p50 is rank ceil(2.0) = 2 -> 20; p95 rank ceil(3.8) = 4 -> 40; p0 rank 1 -> 10
    assert nearest_rank_percentile([40, 10, 30, 20], 50) == 20
    assert nearest_rank_percentile([40, 10, 30, 20], 95) == 40
    assert nearest_rank_percentile([40, 10, 30, 20], 0) == 10
    # n = 20: p95 is rank 19, the second largest
    assert nearest_rank_percentile([float(v) for v in range(1, 21)], 95) == 19.0
    assert nearest_rank_percentile([7.0], 95) == 7.0
    assert nearest_rank_percentile([], 50) is None


def test_mean_skips_missing_values() -> None:
    assert mean([1.0, None, 0.0]) == 0.5
    assert mean([None]) is None
