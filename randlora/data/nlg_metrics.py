"""Corpus metrics of the E2E NLG Challenge, scored with all references of one input together.

``nlg_metrics(hypotheses, references)``: ``hypotheses[i]`` is the output for input i, ``references[i]`` the list
of every human reference of that input. Texts are lower-cased and split into words and punctuation marks.

- BLEU-4 and NIST-5: ``nltk.translate`` (``corpus_bleu``, ``corpus_nist``).
- ROUGE-L: ``rouge-score``'s ``RougeScorer(["rougeL"])``; per input the best F1 over its references, averaged.
- METEOR: ``nltk.translate.meteor_score`` (multi-reference, averaged over inputs), only when nltk's WordNet data
  is installed; otherwise the value is None (missing, never 0).
- CIDEr: :func:`cider` here (CIDEr-D as in pycocoevalcap: TF-IDF n-gram vectors, n = 1..4, clipped, Gaussian
  length penalty sigma 6, times 10), the document frequencies taken over the references of this corpus.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks."""
    return _TOKEN.findall(text.lower())


def _check(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(f"nlg metrics need one hypothesis per input and at least one input; got "
                         f"{len(hypotheses)} hypotheses for {len(references)} reference groups")
    if any(not refs for refs in references):
        raise ValueError("every input needs at least one reference")


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    from nltk.translate.bleu_score import corpus_bleu

    _check(hypotheses, references)
    return float(corpus_bleu([[tokenize(r) for r in refs] for refs in references], [tokenize(h) for h in hypotheses]))


def nist(hypotheses: Sequence[str], references: Sequence[Sequence[str]], n: int = 5) -> float:
    from nltk.translate.nist_score import corpus_nist

    _check(hypotheses, references)
    return float(corpus_nist([[tokenize(r) for r in refs] for refs in references], [tokenize(h) for h in hypotheses],
                             n=n))


def rouge_l(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    from rouge_score import rouge_scorer

    _check(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())
    best = [max(scorer.score(ref, hyp)["rougeL"].fmeasure for ref in refs) for hyp, refs in zip(hypotheses, references)]
    return sum(best) / len(best)


class _Tokenizer:
    """rouge-score's tokenizer interface, with this module's tokenization (its default drops punctuation)."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)


def meteor(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float | None:
    """Mean METEOR, or None when nltk's WordNet corpus is not installed (``nltk.download('wordnet')``)."""
    _check(hypotheses, references)
    try:
        from nltk.corpus import wordnet
        from nltk.translate.meteor_score import meteor_score

        wordnet.ensure_loaded()
    except LookupError:
        return None
    scores = [meteor_score([tokenize(r) for r in refs], tokenize(hyp)) for hyp, refs in zip(hypotheses, references)]
    return sum(scores) / len(scores)


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def cider(hypotheses: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4,
          sigma: float = 6.0) -> float:
    """CIDEr-D: for each n, ``vec = count * (log N - log df)`` (N inputs, df = inputs whose references hold the
    n-gram); per reference ``sum(min(vec_h, vec_r) * vec_r) / (|vec_h| |vec_r|) * exp(-(len_h - len_r)^2 / 2 sigma^2)``;
    averaged over references and over n, times 10, averaged over inputs."""
    _check(hypotheses, references)
    hyp_tokens = [tokenize(h) for h in hypotheses]
    ref_tokens = [[tokenize(r) for r in refs] for refs in references]
    log_n = math.log(float(len(hypotheses)))
    df: Counter = Counter()
    for refs in ref_tokens:
        df.update({gram for ref in refs for n in range(1, max_n + 1) for gram in _ngrams(ref, n)})

    def vectors(tokens: list[str]) -> list[dict[tuple, float]]:
        return [{g: c * (log_n - math.log(max(1.0, df[g]))) for g, c in _ngrams(tokens, n).items()}
                for n in range(1, max_n + 1)]

    def norm(vec: dict[tuple, float]) -> float:
        return math.sqrt(sum(v * v for v in vec.values()))

    scores = []
    for hyp, refs in zip(hyp_tokens, ref_tokens):
        hyp_vecs, per_n = vectors(hyp), [0.0] * max_n
        for ref in refs:
            penalty = math.exp(-((len(hyp) - len(ref)) ** 2) / (2 * sigma ** 2))
            for n, (vh, vr) in enumerate(zip(hyp_vecs, vectors(ref))):
                dot = sum(min(value, vr[g]) * vr[g] for g, value in vh.items() if g in vr)
                if norm(vh) > 0 and norm(vr) > 0:
                    per_n[n] += dot / (norm(vh) * norm(vr)) * penalty
        scores.append(10.0 * sum(per_n) / max_n / len(refs))
    return sum(scores) / len(scores)


def nlg_metrics(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float | None]:
    """BLEU, NIST, METEOR (None without WordNet), ROUGE-L and CIDEr of a corpus (see the module docstring)."""
    return {"bleu": bleu(hypotheses, references), "nist": nist(hypotheses, references),
            "meteor": meteor(hypotheses, references), "rouge_l": rouge_l(hypotheses, references),
            "cider": cider(hypotheses, references)}
