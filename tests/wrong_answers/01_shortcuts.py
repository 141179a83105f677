"""Known-wrong answers to the exercises of notebooks/01_shortcuts.ipynb: each check must reject every one."""

WRONG = {
    "paint_decoy": {
        'rows and columns of the corner swapped': '''
def paint_decoy(images, decoy_labels, corners, patch_size=4):
    out = np.array(images, dtype=np.float32, copy=True)
    n, h, w = out.shape
    mask = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        r0 = 0 if corners[i] in (0, 2) else h - patch_size
        c0 = 0 if corners[i] in (0, 1) else w - patch_size
        out[i, r0:r0 + patch_size, c0:c0 + patch_size] = 1.0 - 0.1 * decoy_labels[i]
        mask[i, r0:r0 + patch_size, c0:c0 + patch_size] = True
    return out, mask
''',
        'patch one pixel too small': '''
def paint_decoy(images, decoy_labels, corners, patch_size=4):
    out = np.array(images, dtype=np.float32, copy=True)
    n, h, w = out.shape
    mask = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        r0 = 0 if corners[i] in (0, 1) else h - patch_size
        c0 = 0 if corners[i] in (0, 2) else w - patch_size
        out[i, r0:r0 + patch_size - 1, c0:c0 + patch_size - 1] = 1.0 - 0.1 * decoy_labels[i]
        mask[i, r0:r0 + patch_size - 1, c0:c0 + patch_size - 1] = True
    return out, mask
''',
        'paints into the caller\'s array instead of a copy': '''
def paint_decoy(images, decoy_labels, corners, patch_size=4):
    out = np.asarray(images, dtype=np.float32)
    n, h, w = out.shape
    mask = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        r0 = 0 if corners[i] in (0, 1) else h - patch_size
        c0 = 0 if corners[i] in (0, 2) else w - patch_size
        out[i, r0:r0 + patch_size, c0:c0 + patch_size] = 1.0 - 0.1 * decoy_labels[i]
        mask[i, r0:r0 + patch_size, c0:c0 + patch_size] = True
    return out, mask
''',
    },
    "accuracy_by_group": {
        'best group first': '''
def accuracy_by_group(y_true, y_pred, groups):
    df = pd.DataFrame({"group": np.asarray(groups), "correct": np.asarray(y_true) == np.asarray(y_pred)})
    out = df.groupby("group")["correct"].agg(n="size", accuracy="mean").reset_index()
    return out.sort_values("accuracy", ascending=False).reset_index(drop=True)
''',
        'n counts the correct predictions, not the group size': '''
def accuracy_by_group(y_true, y_pred, groups):
    df = pd.DataFrame({"group": np.asarray(groups), "correct": np.asarray(y_true) == np.asarray(y_pred)})
    out = df.groupby("group")["correct"].agg(n="sum", accuracy="mean").reset_index()
    return out.sort_values("accuracy").reset_index(drop=True)
''',
        'accuracy divided by the size of the whole set, not of the group': '''
def accuracy_by_group(y_true, y_pred, groups):
    correct = np.asarray(y_true) == np.asarray(y_pred)
    df = pd.DataFrame({"group": np.asarray(groups), "correct": correct})
    out = df.groupby("group")["correct"].agg(n="size", hits="sum").reset_index()
    out["accuracy"] = out.hits / len(correct)
    return out.drop(columns="hits").sort_values("accuracy").reset_index(drop=True)
''',
    },
    "patch_saliency_share": {
        'absolute instead of squared gradients': '''
def patch_saliency_share(model, X, mask):
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.log_softmax(model(Xt), dim=-1).sum(), Xt)
    a = g.abs().flatten(1)
    return ((a * torch.as_tensor(np.asarray(mask), dtype=torch.float32).flatten(1)).sum(1) / a.sum(1)).numpy()
''',
        'gradient of the predicted class only, not the summed log-probabilities': '''
def patch_saliency_share(model, X, mask):
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32).clone().requires_grad_(True)
    lp = F.log_softmax(model(Xt), dim=-1)
    (g,) = torch.autograd.grad(lp.max(-1).values.sum(), Xt)
    sq = g.pow(2).flatten(1)
    return ((sq * torch.as_tensor(np.asarray(mask), dtype=torch.float32).flatten(1)).sum(1) / sq.sum(1)).numpy()
''',
        'one share for the whole batch': '''
def patch_saliency_share(model, X, mask):
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.log_softmax(model(Xt), dim=-1).sum(), Xt)
    sq = g.pow(2)
    share = float((sq * torch.as_tensor(np.asarray(mask), dtype=torch.float32)).sum() / sq.sum())
    return np.full(len(X), share)
''',
    },
    "rrr_objective": {
        'no create_graph: the penalty is a constant to the optimiser': '''
def rrr_objective(model, X, y, mask, lam):
    X = X.detach().clone().requires_grad_(True)
    logits = model(X)
    (grads,) = torch.autograd.grad(F.log_softmax(logits, dim=-1).sum(), X, retain_graph=True)
    penalty = (mask * grads).pow(2).flatten(1).sum(1).mean()
    return F.cross_entropy(logits, y) + lam * penalty
''',
        'gradient of the true class only, not the summed log-probabilities': '''
def rrr_objective(model, X, y, mask, lam):
    X = X.detach().clone().requires_grad_(True)
    logits = model(X)
    lp = F.log_softmax(logits, dim=-1).gather(1, y.view(-1, 1)).sum()
    (grads,) = torch.autograd.grad(lp, X, create_graph=True)
    penalty = (mask * grads).pow(2).flatten(1).sum(1).mean()
    return F.cross_entropy(logits, y) + lam * penalty
''',
        'penalty summed over the batch instead of averaged': '''
def rrr_objective(model, X, y, mask, lam):
    X = X.detach().clone().requires_grad_(True)
    logits = model(X)
    (grads,) = torch.autograd.grad(F.log_softmax(logits, dim=-1).sum(), X, create_graph=True)
    penalty = (mask * grads).pow(2).sum()
    return F.cross_entropy(logits, y) + lam * penalty
''',
    },
    "flip_rate": {
        'net change in the share of positives: flips in both directions cancel': '''
def flip_rate(probe, X_a, X_b):
    if len(X_a) != len(X_b):
        raise ValueError("not paired")
    return float(abs(probe.predict(X_a).mean() - probe.predict(X_b).mean()))
''',
        'agreement rate instead of flip rate': '''
def flip_rate(probe, X_a, X_b):
    if len(X_a) != len(X_b):
        raise ValueError("not paired")
    return float((probe.predict(X_a) == probe.predict(X_b)).mean())
''',
        'a count, not a share': '''
def flip_rate(probe, X_a, X_b):
    if len(X_a) != len(X_b):
        raise ValueError("not paired")
    return float((probe.predict(X_a) != probe.predict(X_b)).sum())
''',
    },
    "project_out": {
        'direction not normalised': '''
def project_out(X, direction):
    u = np.asarray(direction, dtype=np.float64)
    return np.asarray(X, dtype=np.float64) - np.outer(X @ u, u)
''',
        'normalised once only (coordinates along the unit vector, times the raw direction)': '''
def project_out(X, direction):
    d = np.asarray(direction, dtype=np.float64)
    return np.asarray(X, dtype=np.float64) - np.outer(X @ (d / np.linalg.norm(d)), d)
''',
        'keeps the component along the direction instead of removing it': '''
def project_out(X, direction):
    u = np.asarray(direction, dtype=np.float64)
    u = u / np.linalg.norm(u)
    return np.outer(np.asarray(X, dtype=np.float64) @ u, u)
''',
    },
    "inlp": {
        'every probe trained on the original X': '''
def inlp(X, y, n_directions):
    X = np.asarray(X, dtype=np.float64)
    Xc, directions = X.copy(), []
    for _ in range(n_directions):
        w = LogisticRegression(C=1.0, max_iter=2000).fit(X, y).coef_[0]
        u = w / np.linalg.norm(w)
        Xc = Xc - np.outer(Xc @ u, u)
        directions.append(u)
    return Xc, np.array(directions)
''',
        'probe weights not normalised': '''
def inlp(X, y, n_directions):
    Xc, directions = np.array(X, dtype=np.float64, copy=True), []
    for _ in range(n_directions):
        w = LogisticRegression(C=1.0, max_iter=2000).fit(Xc, y).coef_[0]
        Xc = Xc - np.outer(Xc @ w, w)
        directions.append(w)
    return Xc, np.array(directions)
''',
        'only the last direction removed from the original data': '''
def inlp(X, y, n_directions):
    X = np.asarray(X, dtype=np.float64)
    Xc, directions = X.copy(), []
    for _ in range(n_directions):
        w = LogisticRegression(C=1.0, max_iter=2000).fit(Xc, y).coef_[0]
        u = w / np.linalg.norm(w)
        Xc = Xc - np.outer(Xc @ u, u)
        directions.append(u)
    return X - np.outer(X @ u, u), np.array(directions)
''',
    },
}
