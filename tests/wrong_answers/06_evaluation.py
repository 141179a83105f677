"""Known-wrong answers to the exercises of notebooks/06_evaluation.ipynb: each check must reject every one."""

WRONG = {
    "rank_latents": {
        'not divided by the standard deviation': '''
def rank_latents(Z, y):
    return np.argsort(-np.abs(Z[y == 1].mean(0) - Z[y == 0].mean(0)), kind="stable")
''',
        'signed difference instead of its size': '''
def rank_latents(Z, y):
    sd = Z.std(axis=0)
    gap = Z[y == 1].mean(0) - Z[y == 0].mean(0)
    return np.argsort(-np.divide(gap, sd, out=np.zeros_like(gap), where=sd > 0), kind="stable")
''',
    },
    "aggregate": {
        'arithmetic mean with the zero rule': '''
def aggregate(concept, relevance, fluency):
    S = np.stack([np.asarray(s, dtype=float) for s in (concept, relevance, fluency)])
    return np.where((S > 0).all(0), S.mean(0), 0.0)
''',
        'harmonic mean without the zero rule (zeros counted as tiny)': '''
def aggregate(concept, relevance, fluency):
    S = np.stack([np.asarray(s, dtype=float) for s in (concept, relevance, fluency)]).clip(0.5)
    return 3.0 / (1.0 / S).sum(0)
''',
    },
    "diffmean_orthogonal": {
        'common direction not removed': '''
def diffmean_orthogonal(X, y):
    d = X[y == 1].mean(0) - X[y == 0].mean(0)
    return d / np.linalg.norm(d)
''',
        'wrong sign': '''
def diffmean_orthogonal(X, y):
    d = X[y == 0].mean(0) - X[y == 1].mean(0)
    mu = X.mean(0) / np.linalg.norm(X.mean(0))
    d = d - (d @ mu) * mu
    return d / np.linalg.norm(d)
''',
        'not a unit vector': '''
def diffmean_orthogonal(X, y):
    d = X[y == 1].mean(0) - X[y == 0].mean(0)
    mu = X.mean(0) / np.linalg.norm(X.mean(0))
    return d - (d @ mu) * mu
''',
    },
}
