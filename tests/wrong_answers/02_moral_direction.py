"""Known-wrong answers to the exercises of notebooks/02_moral_direction.ipynb: each check must reject every one."""

WRONG = {
    "filter_step": {
        'no min_keep fallback': '''
def filter_step(candidate_ids, scores, threshold, min_keep):
    scores = np.asarray(scores, dtype=float)
    passing = np.flatnonzero(scores >= threshold)
    return candidate_ids[int(passing[0])] if len(passing) else candidate_ids[0]
''',
        'the best-scoring candidate instead of the most likely passing one': '''
def filter_step(candidate_ids, scores, threshold, min_keep):
    return candidate_ids[int(np.argmax(scores))]
''',
    },
}
