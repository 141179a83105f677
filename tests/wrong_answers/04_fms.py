"""Known-wrong answers to the exercises of notebooks/04_fms.ipynb: each check must reject every one."""

WRONG = {
    "capacity": {
        "training accuracy instead of held-out accuracy": '''
def capacity(X_train, y_train, X_test, y_test, random_state=0):
    tree = DecisionTreeClassifier(max_depth=1, random_state=random_state).fit(X_train, y_train)
    return float(np.mean(tree.predict(X_train) == y_train))
''',
        "an unlimited-depth tree (uses many latents)": '''
def capacity(X_train, y_train, X_test, y_test, random_state=0):
    tree = DecisionTreeClassifier(random_state=random_state).fit(X_train, y_train)
    return float(np.mean(tree.predict(X_test) == y_test))
''',
        "the error rate instead of the accuracy": '''
def capacity(X_train, y_train, X_test, y_test, random_state=0):
    tree = DecisionTreeClassifier(max_depth=1, random_state=random_state).fit(X_train, y_train)
    return float(np.mean(tree.predict(X_test) != y_test))
''',
        "fitted on the held-out part, scored on the training part": '''
def capacity(X_train, y_train, X_test, y_test, random_state=0):
    tree = DecisionTreeClassifier(max_depth=1, random_state=random_state).fit(X_test, y_test)
    return float(np.mean(tree.predict(X_train) == y_train))
''',
    },
    "chance_corrected_capacity": {
        "0.5 as chance whatever the class shares": '''
def chance_corrected_capacity(acc, y_test):
    return float(np.clip((acc - 0.5) / 0.5, 0.0, 1.0))
''',
        "no clip: below-chance accuracy goes negative": '''
def chance_corrected_capacity(acc, y_test):
    share = float(np.mean(np.asarray(y_test) == 1))
    chance = max(share, 1.0 - share)
    return float((acc - chance) / (1.0 - chance))
''',
        "the share of positives as chance (wrong when the majority is 0)": '''
def chance_corrected_capacity(acc, y_test):
    chance = float(np.mean(y_test))
    return float(np.clip((acc - chance) / (1.0 - chance), 0.0, 1.0))
''',
        "divides by chance instead of by 1 - chance": '''
def chance_corrected_capacity(acc, y_test):
    share = float(np.mean(np.asarray(y_test) == 1))
    chance = max(share, 1.0 - share)
    return float(np.clip((acc - chance) / chance, 0.0, 1.0))
''',
    },
    "local_disentanglement": {
        "reduced column index taken for an original latent index": '''
def local_disentanglement(X_train, y_train, X_test, y_test, p, random_state=0):
    columns = list(range(X_train.shape[1]))
    accs = []
    for _ in range(p + 1):
        tree = DecisionTreeClassifier(max_depth=1, random_state=random_state).fit(X_train[:, columns], y_train)
        accs.append(float(np.mean(tree.predict(X_test[:, columns]) == y_test)))
        columns = [c for c in columns if c != tree.tree_.feature[0]]
    return float(np.clip(2 * (accs[0] - accs[p]), 0.0, 1.0))
''',
        "not cumulative: only the latest root latent is removed": '''
def local_disentanglement(X_train, y_train, X_test, y_test, p, random_state=0):
    everything = list(range(X_train.shape[1]))
    columns = everything
    accs = []
    for _ in range(p + 1):
        tree = DecisionTreeClassifier(max_depth=1, random_state=random_state).fit(X_train[:, columns], y_train)
        accs.append(float(np.mean(tree.predict(X_test[:, columns]) == y_test)))
        root = columns[tree.tree_.feature[0]]
        columns = [c for c in everything if c != root]
    return float(np.clip(2 * (accs[0] - accs[p]), 0.0, 1.0))
''',
        "no clip: a rise in accuracy gives a negative local": '''
def local_disentanglement(X_train, y_train, X_test, y_test, p, random_state=0):
    columns = list(range(X_train.shape[1]))
    accs = []
    for _ in range(p + 1):
        tree = DecisionTreeClassifier(max_depth=1, random_state=random_state).fit(X_train[:, columns], y_train)
        accs.append(float(np.mean(tree.predict(X_test[:, columns]) == y_test)))
        del columns[tree.tree_.feature[0]]
    return float(min(2 * (accs[0] - accs[p]), 1.0))
''',
        "off by one: p fits instead of p + 1, so acc_p is acc_(p-1)": '''
def local_disentanglement(X_train, y_train, X_test, y_test, p, random_state=0):
    columns = list(range(X_train.shape[1]))
    accs = []
    for _ in range(p):
        tree = DecisionTreeClassifier(max_depth=1, random_state=random_state).fit(X_train[:, columns], y_train)
        accs.append(float(np.mean(tree.predict(X_test[:, columns]) == y_test)))
        del columns[tree.tree_.feature[0]]
    return float(np.clip(2 * (accs[0] - accs[-1]), 0.0, 1.0))
''',
        "missing the factor 2": '''
def local_disentanglement(X_train, y_train, X_test, y_test, p, random_state=0):
    columns = list(range(X_train.shape[1]))
    accs = []
    for _ in range(p + 1):
        tree = DecisionTreeClassifier(max_depth=1, random_state=random_state).fit(X_train[:, columns], y_train)
        accs.append(float(np.mean(tree.predict(X_test[:, columns]) == y_test)))
        del columns[tree.tree_.feature[0]]
    return float(np.clip(accs[0] - accs[p], 0.0, 1.0))
''',
    },
    "global_disentanglement": {
        "divides by all depths, not the n kept": '''
def global_disentanglement(acc_by_depth, stop_at=0.999):
    kept = []
    for acc in acc_by_depth:
        kept.append(acc)
        if acc >= stop_at:
            break
    return float(np.clip(1.0 - np.sum(np.asarray(kept) - acc_by_depth[0]) / len(acc_by_depth), 0.0, 1.0))
''',
        "ignores the stop: every depth counts": '''
def global_disentanglement(acc_by_depth, stop_at=0.999):
    accs = np.asarray(acc_by_depth)
    return float(np.clip(1.0 - np.mean(accs - accs[0]), 0.0, 1.0))
''',
        "drops the depth that reaches stop_at": '''
def global_disentanglement(acc_by_depth, stop_at=0.999):
    kept = []
    for acc in acc_by_depth:
        if acc >= stop_at:
            break
        kept.append(acc)
    kept = np.asarray(kept)
    return float(np.clip(1.0 - np.sum(kept - acc_by_depth[0]) / len(kept), 0.0, 1.0))
''',
        "strict > stop_at": '''
def global_disentanglement(acc_by_depth, stop_at=0.999):
    kept = []
    for acc in acc_by_depth:
        kept.append(acc)
        if acc > stop_at:
            break
    kept = np.asarray(kept)
    return float(np.clip(1.0 - np.sum(kept - acc_by_depth[0]) / len(kept), 0.0, 1.0))
''',
        "no clip": '''
def global_disentanglement(acc_by_depth, stop_at=0.999):
    kept = []
    for acc in acc_by_depth:
        kept.append(acc)
        if acc >= stop_at:
            break
    kept = np.asarray(kept)
    return float(1.0 - np.sum(kept - acc_by_depth[0]) / len(kept))
''',
    },
    "fms_from_curves": {
        "forgets the capacity factor": '''
def fms_from_curves(acc_by_removals, acc_by_depth, p):
    acc0 = float(acc_by_removals[0])
    local = float(np.clip(2.0 * (acc0 - acc_by_removals[p]), 0.0, 1.0))
    global_ = float(np.clip(1.0 - np.mean(np.asarray(acc_by_depth) - acc0), 0.0, 1.0))
    return (local + global_) / 2.0
''',
        "off by one: acc_(p-1) instead of acc_p": '''
def fms_from_curves(acc_by_removals, acc_by_depth, p):
    acc0 = float(acc_by_removals[0])
    local = float(np.clip(2.0 * (acc0 - acc_by_removals[p - 1]), 0.0, 1.0))
    global_ = float(np.clip(1.0 - np.mean(np.asarray(acc_by_depth) - acc0), 0.0, 1.0))
    return acc0 * (local + global_) / 2.0
''',
        "local not clipped": '''
def fms_from_curves(acc_by_removals, acc_by_depth, p):
    acc0 = float(acc_by_removals[0])
    local = 2.0 * (acc0 - acc_by_removals[p])
    global_ = float(np.clip(1.0 - np.mean(np.asarray(acc_by_depth) - acc0), 0.0, 1.0))
    return acc0 * (local + global_) / 2.0
''',
        "global sums the gains instead of averaging them": '''
def fms_from_curves(acc_by_removals, acc_by_depth, p):
    acc0 = float(acc_by_removals[0])
    local = float(np.clip(2.0 * (acc0 - acc_by_removals[p]), 0.0, 1.0))
    global_ = float(np.clip(1.0 - np.sum(np.asarray(acc_by_depth) - acc0), 0.0, 1.0))
    return acc0 * (local + global_) / 2.0
''',
        "product of local and global instead of their mean": '''
def fms_from_curves(acc_by_removals, acc_by_depth, p):
    acc0 = float(acc_by_removals[0])
    local = float(np.clip(2.0 * (acc0 - acc_by_removals[p]), 0.0, 1.0))
    global_ = float(np.clip(1.0 - np.mean(np.asarray(acc_by_depth) - acc0), 0.0, 1.0))
    return acc0 * local * global_
''',
    },
    "best_stump": {
        "unweighted mean of the two sides' Gini": '''
def best_stump(X, y):
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    n = len(y)
    n_left = np.arange(1, n)
    best = (np.inf, -1, np.nan)
    for j in range(X.shape[1]):
        order = np.argsort(X[:, j], kind="stable")
        xs, ys = X[order, j], y[order]
        ql = np.cumsum(ys)[:-1] / n_left
        qr = (ys.sum() - np.cumsum(ys)[:-1]) / (n - n_left)
        impurity = (2 * ql * (1 - ql) + 2 * qr * (1 - qr)) / 2
        impurity[xs[1:] <= xs[:-1]] = np.inf
        i = int(np.argmin(impurity))
        if impurity[i] < best[0]:
            best = (impurity[i], j, (xs[i] + xs[i + 1]) / 2)
    return best[1], float(best[2])
''',
        "fewest misclassifications instead of Gini": '''
def best_stump(X, y):
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    n = len(y)
    n_left = np.arange(1, n)
    best = (np.inf, -1, np.nan)
    for j in range(X.shape[1]):
        order = np.argsort(X[:, j], kind="stable")
        xs, ys = X[order, j], y[order]
        pl = np.cumsum(ys)[:-1]
        pr = ys.sum() - pl
        errors = np.minimum(pl, n_left - pl) + np.minimum(pr, (n - n_left) - pr)
        errors[xs[1:] <= xs[:-1]] = np.inf
        i = int(np.argmin(errors))
        if errors[i] < best[0]:
            best = (errors[i], j, (xs[i] + xs[i + 1]) / 2)
    return best[1], float(best[2])
''',
        "threshold at the left sample's value, not the midpoint": '''
def best_stump(X, y):
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    n = len(y)
    n_left = np.arange(1, n)
    best = (np.inf, -1, np.nan)
    for j in range(X.shape[1]):
        order = np.argsort(X[:, j], kind="stable")
        xs, ys = X[order, j], y[order]
        ql = np.cumsum(ys)[:-1] / n_left
        qr = (ys.sum() - np.cumsum(ys)[:-1]) / (n - n_left)
        impurity = (n_left * 2 * ql * (1 - ql) + (n - n_left) * 2 * qr * (1 - qr)) / n
        impurity[xs[1:] <= xs[:-1]] = np.inf
        i = int(np.argmin(impurity))
        if impurity[i] < best[0]:
            best = (impurity[i], j, xs[i])
    return best[1], float(best[2])
''',
        "misses the last split (between the two largest values)": '''
def best_stump(X, y):
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    n = len(y)
    best = (np.inf, -1, np.nan)
    for j in range(X.shape[1]):
        order = np.argsort(X[:, j], kind="stable")
        xs, ys = X[order, j], y[order]
        for i in range(n - 2):
            left, right = ys[: i + 1], ys[i + 1:]
            if xs[i + 1] <= xs[i]:
                continue
            gl = 2 * left.mean() * (1 - left.mean())
            gr = 2 * right.mean() * (1 - right.mean())
            impurity = (len(left) * gl + len(right) * gr) / n
            if impurity < best[0]:
                best = (impurity, j, (xs[i] + xs[i + 1]) / 2)
    return best[1], float(best[2])
''',
        "picks the worst split (argmax)": '''
def best_stump(X, y):
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    n = len(y)
    n_left = np.arange(1, n)
    best = (-np.inf, -1, np.nan)
    for j in range(X.shape[1]):
        order = np.argsort(X[:, j], kind="stable")
        xs, ys = X[order, j], y[order]
        ql = np.cumsum(ys)[:-1] / n_left
        qr = (ys.sum() - np.cumsum(ys)[:-1]) / (n - n_left)
        impurity = (n_left * 2 * ql * (1 - ql) + (n - n_left) * 2 * qr * (1 - qr)) / n
        impurity[xs[1:] <= xs[:-1]] = -np.inf
        i = int(np.argmax(impurity))
        if impurity[i] > best[0]:
            best = (impurity[i], j, (xs[i] + xs[i + 1]) / 2)
    return best[1], float(best[2])
''',
    },
}
