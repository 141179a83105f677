"""Known-wrong answers to the exercises of notebooks/06_evaluation.ipynb: each check must reject every one."""

WRONG = {
    "auroc_ranksum": {
        'ordinal ranks: ties not averaged': '''
def auroc_ranksum(scores, labels):
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels)
    ranks = np.argsort(np.argsort(scores, kind="stable"), kind="stable") + 1.0
    n1 = int((labels == 1).sum())
    n0 = len(labels) - n1
    return float((ranks[labels == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
''',
        'the smallest possible rank sum not subtracted': '''
def auroc_ranksum(scores, labels):
    from scipy.stats import rankdata
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels)
    ranks = rankdata(scores)
    n1 = int((labels == 1).sum())
    n0 = len(labels) - n1
    return float(ranks[labels == 1].sum() / (n1 * n0))
''',
        'ranks counted from 0': '''
def auroc_ranksum(scores, labels):
    from scipy.stats import rankdata
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels)
    ranks = rankdata(scores) - 1
    n1 = int((labels == 1).sum())
    n0 = len(labels) - n1
    return float((ranks[labels == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
''',
        'divided by n1 * n instead of n1 * n0': '''
def auroc_ranksum(scores, labels):
    from scipy.stats import rankdata
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels)
    ranks = rankdata(scores)
    n1 = int((labels == 1).sum())
    return float((ranks[labels == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * len(labels)))
''',
    },
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
        'ascending order: the least separating latent first': '''
def rank_latents(Z, y):
    sd = Z.std(axis=0)
    gap = np.abs(Z[y == 1].mean(0) - Z[y == 0].mean(0))
    return np.argsort(np.divide(gap, sd, out=np.zeros_like(gap), where=sd > 0), kind="stable")
''',
    },
    "bucket_score": {
        'a value at a cut goes down (strict >)': '''
def bucket_score(values, cuts):
    lo, hi = cuts
    v = np.asarray(values, dtype=float)
    return np.where(np.isnan(v), 0, (v > lo).astype(int) + (v > hi).astype(int))
''',
        'np.digitize without the NaN rule (NaN lands in the top bucket)': '''
def bucket_score(values, cuts):
    return np.digitize(np.asarray(values, dtype=float), cuts)
''',
        'buckets 1, 2, 3 instead of 0, 1, 2': '''
def bucket_score(values, cuts):
    lo, hi = cuts
    v = np.asarray(values, dtype=float)
    return np.where(np.isnan(v), 0, 1 + (v >= lo).astype(int) + (v >= hi).astype(int))
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
    "relevance_z": {
        'the null includes the matched pairs (the diagonal)': '''
def relevance_z(instr_emb, answer_emb, new_instr_emb, new_out_emb):
    unit = lambda A: np.asarray(A, dtype=float) / np.linalg.norm(A, axis=1, keepdims=True)
    C = unit(instr_emb) @ unit(answer_emb).T
    cos = (unit(new_instr_emb) * unit(new_out_emb)).sum(axis=1)
    return (cos - C.mean()) / C.std(ddof=1)
''',
        'dot products instead of cosines': '''
def relevance_z(instr_emb, answer_emb, new_instr_emb, new_out_emb):
    C = np.asarray(instr_emb) @ np.asarray(answer_emb).T
    null = C[~np.eye(len(C), dtype=bool)]
    cos = (np.asarray(new_instr_emb) * np.asarray(new_out_emb)).sum(axis=1)
    return (cos - null.mean()) / null.std(ddof=1)
''',
        'population standard deviation (ddof=0)': '''
def relevance_z(instr_emb, answer_emb, new_instr_emb, new_out_emb):
    unit = lambda A: np.asarray(A, dtype=float) / np.linalg.norm(A, axis=1, keepdims=True)
    C = unit(instr_emb) @ unit(answer_emb).T
    null = C[~np.eye(len(C), dtype=bool)]
    cos = (unit(new_instr_emb) * unit(new_out_emb)).sum(axis=1)
    return (cos - null.mean()) / null.std()
''',
        'null from the pairs being scored instead of the calibration pairs': '''
def relevance_z(instr_emb, answer_emb, new_instr_emb, new_out_emb):
    unit = lambda A: np.asarray(A, dtype=float) / np.linalg.norm(A, axis=1, keepdims=True)
    C = unit(new_instr_emb) @ unit(new_out_emb).T
    null = C[~np.eye(len(C), dtype=bool)]
    cos = np.diag(C)
    return (cos - null.mean()) / null.std(ddof=1)
''',
    },
    "select_then_report": {
        'factor chosen on the report half (peeking)': '''
def select_then_report(rows):
    rep = rows[rows["half"] == "report"]
    means = rep.groupby(["method", "factor"])["aggregate"].mean().reset_index()
    means["size"] = means["factor"].abs()
    best = means.sort_values(["method", "aggregate", "size"], ascending=[True, False, True]).groupby("method").head(1)
    return best.set_index("method").rename(columns={"aggregate": "report"})[["factor", "report"]]
''',
        'factor chosen on both halves pooled': '''
def select_then_report(rows):
    means = rows.groupby(["method", "factor"])["aggregate"].mean().reset_index()
    means["size"] = means["factor"].abs()
    best = (means.sort_values(["method", "aggregate", "size"], ascending=[True, False, True])
            .groupby("method").head(1).set_index("method")["factor"])
    rep = rows[rows["half"] == "report"]
    return pd.DataFrame({m: {"factor": f, "report": rep[(rep["method"] == m) & (rep["factor"] == f)]["aggregate"].mean()}
                         for m, f in best.items()}).T
''',
        'a tie goes to the larger factor': '''
def select_then_report(rows):
    sel = rows[rows["half"] == "select"].groupby(["method", "factor"])["aggregate"].mean().reset_index()
    sel["size"] = sel["factor"].abs()
    best = (sel.sort_values(["method", "aggregate", "size"], ascending=[True, False, False])
            .groupby("method").head(1).set_index("method")["factor"])
    rep = rows[rows["half"] == "report"]
    return pd.DataFrame({m: {"factor": f, "report": rep[(rep["method"] == m) & (rep["factor"] == f)]["aggregate"].mean()}
                         for m, f in best.items()}).T
''',
        'the best single output (max) instead of the best mean': '''
def select_then_report(rows):
    sel = rows[rows["half"] == "select"].groupby(["method", "factor"])["aggregate"].max().reset_index()
    sel["size"] = sel["factor"].abs()
    best = (sel.sort_values(["method", "aggregate", "size"], ascending=[True, False, True])
            .groupby("method").head(1).set_index("method")["factor"])
    rep = rows[rows["half"] == "report"]
    return pd.DataFrame({m: {"factor": f, "report": rep[(rep["method"] == m) & (rep["factor"] == f)]["aggregate"].mean()}
                         for m, f in best.items()}).T
''',
        'reports the select-half mean of the chosen factor': '''
def select_then_report(rows):
    sel = rows[rows["half"] == "select"].groupby(["method", "factor"])["aggregate"].mean().reset_index()
    sel["size"] = sel["factor"].abs()
    best = (sel.sort_values(["method", "aggregate", "size"], ascending=[True, False, True])
            .groupby("method").head(1).set_index("method"))
    return best.rename(columns={"aggregate": "report"})[["factor", "report"]]
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
        'projection on the unnormalised mean': '''
def diffmean_orthogonal(X, y):
    d = X[y == 1].mean(0) - X[y == 0].mean(0)
    mu = X.mean(0)
    d = d - (d @ mu) * mu
    return d / np.linalg.norm(d)
''',
    },
}
