"""Known-wrong answers to the exercises of notebooks/02_moral_direction.ipynb: each check must reject every one."""

WRONG = {
    "template_average": {
        'sentences built template by template, then reshaped action by action': '''
def template_average(encode, actions, templates):
    sentences = [t.format(a) for t in templates for a in actions]
    X = np.asarray(encode(sentences))
    return X.reshape(len(actions), len(templates), -1).mean(axis=1)
''',
        'mean over the actions instead of the templates': '''
def template_average(encode, actions, templates):
    sentences = [t.format(a) for a in actions for t in templates]
    X = np.asarray(encode(sentences))
    return X.reshape(len(actions), len(templates), -1).mean(axis=0)
''',
        'one encode call per action': '''
def template_average(encode, actions, templates):
    return np.stack([np.asarray(encode([t.format(a) for t in templates])).mean(axis=0) for a in actions])
''',
        'sum over templates instead of the mean': '''
def template_average(encode, actions, templates):
    sentences = [t.format(a) for a in actions for t in templates]
    X = np.asarray(encode(sentences))
    return X.reshape(len(actions), len(templates), -1).sum(axis=1)
''',
    },
    "pc_variance_ratios": {
        'columns not centred': '''
def pc_variance_ratios(X, k):
    s = np.linalg.svd(np.asarray(X, dtype=float), compute_uv=False)
    return s[:k] ** 2 / (s ** 2).sum()
''',
        'singular values not squared': '''
def pc_variance_ratios(X, k):
    X = np.asarray(X, dtype=float)
    s = np.linalg.svd(X - X.mean(0), compute_uv=False)
    return s[:k] / s.sum()
''',
        'normalised by the first k components only': '''
def pc_variance_ratios(X, k):
    X = np.asarray(X, dtype=float)
    v = np.linalg.svd(X - X.mean(0), compute_uv=False)[:k] ** 2
    return v / v.sum()
''',
        'variances of the coordinates, not of the principal components': '''
def pc_variance_ratios(X, k):
    v = np.sort(np.asarray(X, dtype=float).var(axis=0))[::-1]
    return v[:k] / v.sum()
''',
    },
    "oriented_pc1": {
        'no orientation: whatever sign the solver returns': '''
def oriented_pc1(X, labels):
    from sklearn.decomposition import PCA
    return PCA(n_components=1, svd_solver="full").fit(X).components_[0]
''',
        'label-free sign rule (largest entry positive)': '''
def oriented_pc1(X, labels):
    from sklearn.decomposition import PCA
    pc1 = PCA(n_components=1, svd_solver="full").fit(X).components_[0]
    return pc1 if pc1[np.argmax(np.abs(pc1))] > 0 else -pc1
''',
        'the normalised difference of class means instead of PC1': '''
def oriented_pc1(X, labels):
    X, labels = np.asarray(X, dtype=float), np.asarray(labels)
    d = X[labels > 0].mean(0) - X[labels < 0].mean(0)
    return d / np.linalg.norm(d)
''',
    },
    "rank_agreement": {
        'Pearson correlation of the raw values': '''
def rank_agreement(scores, judgements):
    return float(np.corrcoef(np.asarray(scores, dtype=float), np.asarray(judgements, dtype=float))[0, 1])
''',
        'argsort used as the ranks': '''
def rank_agreement(scores, judgements):
    a, b = np.argsort(np.asarray(scores)), np.argsort(np.asarray(judgements))
    return float(np.corrcoef(a, b)[0, 1])
''',
        'ties broken by position instead of sharing their mean rank': '''
def rank_agreement(scores, judgements):
    a = np.argsort(np.argsort(np.asarray(scores), kind="stable"), kind="stable")
    b = np.argsort(np.argsort(np.asarray(judgements), kind="stable"), kind="stable")
    return float(np.corrcoef(a, b)[0, 1])
''',
    },
    "loto_directions": {
        'leave one in: only template t, not all but t': '''
def loto_directions(E, labels):
    E, labels = np.asarray(E, dtype=float), np.asarray(labels)
    out = []
    for t in range(E.shape[1]):
        Xc = E[:, t] - E[:, t].mean(0)
        pc1 = np.linalg.svd(Xc, full_matrices=False)[2][0]
        proj = Xc @ pc1
        out.append(pc1 if proj[labels > 0].mean() >= proj[labels < 0].mean() else -pc1)
    return np.stack(out)
''',
        'no orientation': '''
def loto_directions(E, labels):
    E = np.asarray(E, dtype=float)
    out = []
    for t in range(E.shape[1]):
        X = E[:, np.arange(E.shape[1]) != t].mean(1)
        out.append(np.linalg.svd(X - X.mean(0), full_matrices=False)[2][0])
    return np.stack(out)
''',
        'rows not centred before the SVD': '''
def loto_directions(E, labels):
    E, labels = np.asarray(E, dtype=float), np.asarray(labels)
    out = []
    for t in range(E.shape[1]):
        X = E[:, np.arange(E.shape[1]) != t].mean(1)
        pc1 = np.linalg.svd(X, full_matrices=False)[2][0]
        proj = X @ pc1
        out.append(pc1 if proj[labels > 0].mean() >= proj[labels < 0].mean() else -pc1)
    return np.stack(out)
''',
        'template t never actually left out': '''
def loto_directions(E, labels):
    E, labels = np.asarray(E, dtype=float), np.asarray(labels)
    X = E.mean(1)
    Xc = X - X.mean(0)
    pc1 = np.linalg.svd(Xc, full_matrices=False)[2][0]
    proj = Xc @ pc1
    pc1 = pc1 if proj[labels > 0].mean() >= proj[labels < 0].mean() else -pc1
    return np.stack([pc1] * E.shape[1])
''',
    },
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
        'a score equal to the threshold is dropped (strict inequality)': '''
def filter_step(candidate_ids, scores, threshold, min_keep):
    scores = np.asarray(scores, dtype=float)
    keep = scores > threshold
    if keep.sum() < min_keep:
        keep[np.argsort(-scores, kind="stable")[:min_keep]] = True
    return candidate_ids[int(np.flatnonzero(keep)[0])]
''',
        'the fallback emits the best-scoring candidate, not the likeliest of the kept ones': '''
def filter_step(candidate_ids, scores, threshold, min_keep):
    scores = np.asarray(scores, dtype=float)
    keep = np.flatnonzero(scores >= threshold)
    if len(keep) < min_keep:
        return candidate_ids[int(np.argmax(scores))]
    return candidate_ids[int(keep[0])]
''',
    },
}
