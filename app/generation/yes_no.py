"""Yes/no questions answered from the first answer token's logits, shared by every generator.

The reranker ("does this passage answer the question?") and the answerability check ask the
generator's own model this way: one prompt read, no generation, so no second copy of the weights
and no second queue. The score is the softmax over the logits of the first token of "yes" and of
"no" alone, so it does not depend on how much mass the model puts on other replies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

YES_NO_BATCH = 8  # prompts per forward pass where the engine batches (transformers)


def yes_no_tokens(encode: Callable[[str], Sequence[int]]) -> tuple[int, int]:
    """The first token ids of "yes" and "no" under a tokenizer's ``encode``."""
    yes, no = encode("yes"), encode("no")
    if not yes or not no or yes[0] == no[0]:
        raise ValueError("this tokenizer does not tell 'yes' from 'no' by their first token")
    return int(yes[0]), int(no[0])


def yes_share(yes_logit: float, no_logit: float) -> float:
    """P(yes) / (P(yes) + P(no)) from the two logits, computed stably (a logistic of their
    difference, with the exponent kept where it cannot overflow)."""
    d = yes_logit - no_logit
    if d >= 0:
        return 1.0 / (1.0 + math.exp(-d))
    e = math.exp(d)
    return e / (1.0 + e)
