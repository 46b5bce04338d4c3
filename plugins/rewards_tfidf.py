"""``tfidf_relevance``: IDEA-E's CPU-side relevance reward (scikit-learn TF-IDF).

score = cosine(tfidf(reasoning), tfidf(prompt + context)) × min(1, target_words / words)
        + section_bonus × (share of the IDEA-E sections the reasoning heads, "Identify:" …)

It rewards reasoning that stays on the prompt's vocabulary and penalises verbose,
off-topic traces. The vectoriser is fitted per batch on the prompts, contexts and
reasonings it scores. It runs in the reward thread pool, off the learner's thread.
Options: ``target_words`` (default 120), ``context_column`` (optional extra text),
``sections`` (default the five IDEA-E headings), ``section_bonus`` (default 0.0; IDEA-E
recipes set it). A section counts when its name stands as a heading — the whole word, any
case, followed by a colon — so "facts", "impact" and "exact" do not count as "Act". The formula is our reading of the writeup ([I] in RECIPES.md).
"""

from __future__ import annotations

import re

from reasonlab import hookimpl
from reasonlab.format import parse_completion

IDEA_E_SECTIONS = ("identify", "determine", "explore", "act", "evaluate")


def tfidf_relevance(prompts, completions, target_words: int = 120, context_column: str | None = None,
                    sections=IDEA_E_SECTIONS, section_bonus: float = 0.0, **columns):
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    contexts = columns.get(context_column) if context_column else None
    references = [p + " " + str(contexts[i]) if contexts else p for i, p in enumerate(prompts)]
    reasonings = [(parse_completion(c).reasoning or "") for c in completions]
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    try:
        matrix = vectorizer.fit_transform(references + reasonings)
    except ValueError:  # empty vocabulary: nothing but stop words everywhere
        return [0.0] * len(completions)
    n = len(completions)
    # rows are L2-normalised, so each cosine is a row-wise dot product: one sparse op for the batch
    # (sklearn's cosine_similarity per pair spent 60 % of the time validating its inputs)
    relevances = np.asarray(matrix[:n].multiply(matrix[n:]).sum(axis=1)).ravel()
    scores = []
    for i, reasoning in enumerate(reasonings):
        words = len(reasoning.split())
        if not words:
            scores.append(0.0)
            continue
        relevance = float(relevances[i])
        score = relevance * min(1.0, target_words / words)
        if section_bonus:
            headed = sum(bool(re.search(rf"\b{re.escape(s)}\s*:", reasoning, re.IGNORECASE)) for s in sections)
            score += section_bonus * headed / len(sections)
        scores.append(score)
    return scores


@hookimpl
def register_rewards(register):
    register("tfidf_relevance", tfidf_relevance, columns=["{context_column}"])
