"""Our own answer as HTTP caches and clients see it: validators, caching headers, coding.

finish.py       finish_answer / answer_middleware, AnswerFreshness (what the handler says)
conditional.py  strong ETag of the bytes sent, If-None-Match (weak comparison)
encoding.py     Accept-Encoding with q-values, br and gzip
"""

from __future__ import annotations

from bff.answer.finish import ANSWER_FRESHNESS, AnswerFreshness, answer_middleware, finish_answer

__all__ = ["ANSWER_FRESHNESS", "AnswerFreshness", "answer_middleware", "finish_answer"]
