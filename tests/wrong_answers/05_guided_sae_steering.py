"""Known-wrong answers to the exercises of notebooks/05_guided_sae_steering.ipynb: each check must reject every one."""

WRONG = {
    "gsae_loss": {
        'reconstruction error not normalised by ||x||^2': '''
def gsae_loss(x, x_hat, h_concepts, labels, weight):
    recon = (x_hat - x).pow(2).sum(dim=-1).mean()
    return recon + weight * torch.nn.functional.binary_cross_entropy_with_logits(h_concepts, labels.float())
''',
        'BCE on sigmoid(h) treated as logits': '''
def gsae_loss(x, x_hat, h_concepts, labels, weight):
    recon = ((x_hat - x).pow(2).sum(dim=-1) / x.pow(2).sum(dim=-1)).mean()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(torch.sigmoid(h_concepts), labels.float())
    return recon + weight * bce
''',
        'sum of errors over sum of norms instead of the mean per-token ratio': '''
def gsae_loss(x, x_hat, h_concepts, labels, weight):
    recon = (x_hat - x).pow(2).sum() / x.pow(2).sum()
    return recon + weight * torch.nn.functional.binary_cross_entropy_with_logits(h_concepts, labels.float())
''',
    },
    "scar_code": {
        'the conditioned latent competes in the TopK race': '''
def scar_code(h, k):
    values, idx = h.topk(k + 1, dim=-1)
    return torch.zeros_like(h).scatter(-1, idx, torch.relu(values))
''',
        'sigmoid activation, as in G-SAE': '''
def scar_code(h, k):
    rest = h[:, 1:]
    values, idx = rest.topk(k, dim=-1)
    others = torch.zeros_like(rest).scatter(-1, idx, torch.sigmoid(values))
    return torch.cat([torch.sigmoid(h[:, :1]), others], dim=-1)
''',
        'conditioned latent not passed through ReLU': '''
def scar_code(h, k):
    rest = h[:, 1:]
    values, idx = rest.topk(k, dim=-1)
    others = torch.zeros_like(rest).scatter(-1, idx, torch.relu(values))
    return torch.cat([h[:, :1], others], dim=-1)
''',
        'indices of the slice not shifted by one': '''
def scar_code(h, k):
    values, idx = h[:, 1:].topk(k, dim=-1)
    out = torch.zeros_like(h).scatter(-1, idx, torch.relu(values))
    out[:, 0] = torch.relu(h[:, 0])
    return out
''',
    },
    "reserved_latent_auroc": {
        'ties counted as losses': '''
def reserved_latent_auroc(codes, text_index, labels, latent):
    means = np.bincount(text_index, weights=codes[:, latent]) / np.bincount(text_index)
    labels = np.asarray(labels)
    pos, neg = means[labels == 1], means[labels == 0]
    return float((pos[:, None] > neg[None, :]).mean())
''',
        'tokens scored one by one instead of sentence means': '''
def reserved_latent_auroc(codes, text_index, labels, latent):
    s = codes[:, latent]
    y = np.asarray(labels)[np.asarray(text_index)]
    pos, neg = s[y == 1], s[y == 0]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())
''',
        'sum over the sentence instead of its mean': '''
def reserved_latent_auroc(codes, text_index, labels, latent):
    sums = np.bincount(text_index, weights=codes[:, latent])
    labels = np.asarray(labels)
    pos, neg = sums[labels == 1], sums[labels == 0]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())
''',
        'max over the sentence instead of its mean': '''
def reserved_latent_auroc(codes, text_index, labels, latent):
    n = int(np.max(text_index)) + 1
    means = np.array([codes[np.asarray(text_index) == t, latent].max() for t in range(n)])
    labels = np.asarray(labels)
    pos, neg = means[labels == 1], means[labels == 0]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())
''',
    },
    "beta_scaled_direction": {
        'beta without dividing by ||d_i||': '''
def beta_scaled_direction(h, d_i, alpha):
    return alpha * h.norm(dim=-1, keepdim=True) * d_i
''',
        'one norm for the whole tensor instead of one per position': '''
def beta_scaled_direction(h, d_i, alpha):
    return alpha * h.norm() / d_i.norm() * d_i
''',
    },
    "balanced_gamma": {
        'toward and away swapped': '''
def balanced_gamma(f_i, alpha):
    return f_i if alpha > 0 else 1.0 - f_i
''',
        'the naive reading: gamma = f_i both ways': '''
def balanced_gamma(f_i, alpha):
    return f_i
''',
    },
    "balanced_steer": {
        'f_i read before TopK (sigmoid of the pre-activation)': '''
def balanced_steer(h, sae, latent, alpha):
    d_i = sae.W_dec[latent].detach()
    with torch.no_grad():
        f = torch.sigmoid(sae.pre_acts(h.reshape(-1, h.shape[-1])))[:, latent]
    f = f.reshape(*h.shape[:-1], 1)
    gamma = 1.0 - f if alpha > 0 else f
    return h + alpha * h.norm(dim=-1, keepdim=True) * gamma * d_i / d_i.norm()
''',
        'gamma toward and away swapped': '''
def balanced_steer(h, sae, latent, alpha):
    d_i = sae.W_dec[latent].detach()
    with torch.no_grad():
        f = sae.encode(h.reshape(-1, h.shape[-1]))[:, latent]
    f = f.reshape(*h.shape[:-1], 1)
    gamma = f if alpha > 0 else 1.0 - f
    return h + alpha * h.norm(dim=-1, keepdim=True) * gamma * d_i / d_i.norm()
''',
        'decoder row not divided by its norm': '''
def balanced_steer(h, sae, latent, alpha):
    d_i = sae.W_dec[latent].detach()
    with torch.no_grad():
        f = sae.encode(h.reshape(-1, h.shape[-1]))[:, latent]
    f = f.reshape(*h.shape[:-1], 1)
    gamma = 1.0 - f if alpha > 0 else f
    return h + alpha * h.norm(dim=-1, keepdim=True) * gamma * d_i
''',
        'one norm for the whole batch': '''
def balanced_steer(h, sae, latent, alpha):
    d_i = sae.W_dec[latent].detach()
    with torch.no_grad():
        f = sae.encode(h.reshape(-1, h.shape[-1]))[:, latent]
    f = f.reshape(*h.shape[:-1], 1)
    gamma = 1.0 - f if alpha > 0 else f
    return h + alpha * h.norm() * gamma * d_i / d_i.norm()
''',
        'returns the push, not the steered activations': '''
def balanced_steer(h, sae, latent, alpha):
    d_i = sae.W_dec[latent].detach()
    with torch.no_grad():
        f = sae.encode(h.reshape(-1, h.shape[-1]))[:, latent]
    f = f.reshape(*h.shape[:-1], 1)
    gamma = 1.0 - f if alpha > 0 else f
    return alpha * h.norm(dim=-1, keepdim=True) * gamma * d_i / d_i.norm()
''',
    },
    "clamp_latent": {
        'sigma forgotten: the standardized decoder row added in raw units': '''
def clamp_latent(h, sae, latent, value):
    rows = h.reshape(-1, h.shape[-1])
    with torch.no_grad():
        f = sae.encode(rows)[:, latent:latent + 1]
        delta = (value - f) * sae.W_dec[latent]
    return h + delta.reshape(h.shape)
''',
        'adds value * sigma * D_i, ignoring the current reading': '''
def clamp_latent(h, sae, latent, value):
    rows = h.reshape(-1, h.shape[-1])
    with torch.no_grad():
        _, sigma = sae.token_stats(rows)
        delta = value * sigma * sae.W_dec[latent]
    return h + delta.reshape(h.shape)
''',
        'sign flipped: (f_i - value)': '''
def clamp_latent(h, sae, latent, value):
    rows = h.reshape(-1, h.shape[-1])
    with torch.no_grad():
        f = sae.encode(rows)[:, latent:latent + 1]
        _, sigma = sae.token_stats(rows)
        delta = (f - value) * sigma * sae.W_dec[latent]
    return h + delta.reshape(h.shape)
''',
        'sigma taken as the RMS (norm / sqrt(d)), ignoring the mean': '''
def clamp_latent(h, sae, latent, value):
    rows = h.reshape(-1, h.shape[-1])
    with torch.no_grad():
        f = sae.encode(rows)[:, latent:latent + 1]
        sigma = rows.norm(dim=-1, keepdim=True) / rows.shape[-1] ** 0.5
        delta = (value - f) * sigma * sae.W_dec[latent]
    return h + delta.reshape(h.shape)
''',
    },
}
