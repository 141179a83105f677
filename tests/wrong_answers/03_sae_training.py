"""Known-wrong answers to the exercises of notebooks/03_sae_training.ipynb: each check must reject every one."""

WRONG = {
    "topk_activation": {
        'no ReLU on the kept values': '''
def topk_activation(pre, k):
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, values)
''',
        'top k over the wrong axis': '''
def topk_activation(pre, k):
    values, indices = pre.topk(k, dim=0)
    return torch.zeros_like(pre).scatter(0, indices, torch.relu(values))
''',
        'off by one: keeps k + 1 entries': '''
def topk_activation(pre, k):
    values, indices = pre.topk(k + 1, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
''',
    },
    "normalize_decoder_rows": {
        'columns normalised instead of rows': '''
def normalize_decoder_rows(W_dec):
    return W_dec / W_dec.norm(dim=0, keepdim=True).clamp_min(1e-8)
''',
        'divides in place, changing the caller\'s tensor': '''
def normalize_decoder_rows(W_dec):
    return W_dec.div_(W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))
''',
        'L1 norm instead of L2': '''
def normalize_decoder_rows(W_dec):
    return W_dec / W_dec.abs().sum(dim=1, keepdim=True).clamp_min(1e-8)
''',
    },
    "fraction_of_variance_unexplained": {
        'not centred: divides by the raw second moment': '''
def fraction_of_variance_unexplained(x, x_hat):
    return ((x - x_hat) ** 2).sum() / (x ** 2).sum()
''',
        'one global mean instead of a mean per dimension': '''
def fraction_of_variance_unexplained(x, x_hat):
    return ((x - x_hat) ** 2).sum() / ((x - x.mean()) ** 2).sum()
''',
        'average of per-dimension ratios': '''
def fraction_of_variance_unexplained(x, x_hat):
    return (((x - x_hat) ** 2).sum(0) / ((x - x.mean(0)) ** 2).sum(0)).mean()
''',
        'unbiased variance (n - 1) in the denominator': '''
def fraction_of_variance_unexplained(x, x_hat):
    return ((x - x_hat) ** 2).mean(0).sum() / x.var(dim=0).sum()
''',
    },
    "update_dead_clock": {
        'counts optimizer steps instead of tokens': '''
def update_dead_clock(tokens_since_fired, codes, dead_tokens):
    fired = (codes > 0).any(dim=0)
    counters = torch.where(fired, torch.zeros_like(tokens_since_fired), tokens_since_fired + 1)
    return counters, counters >= dead_tokens
''',
        'strictly greater than the threshold': '''
def update_dead_clock(tokens_since_fired, codes, dead_tokens):
    fired = (codes > 0).any(dim=0)
    counters = torch.where(fired, torch.zeros_like(tokens_since_fired), tokens_since_fired + codes.shape[0])
    return counters, counters > dead_tokens
''',
        'a latent must fire on every token to count as alive': '''
def update_dead_clock(tokens_since_fired, codes, dead_tokens):
    fired = (codes > 0).all(dim=0)
    counters = torch.where(fired, torch.zeros_like(tokens_since_fired), tokens_since_fired + codes.shape[0])
    return counters, counters >= dead_tokens
''',
        'updates the counters in place': '''
def update_dead_clock(tokens_since_fired, codes, dead_tokens):
    fired = (codes > 0).any(dim=0)
    tokens_since_fired += codes.shape[0]
    tokens_since_fired[fired] = 0
    return tokens_since_fired, tokens_since_fired >= dead_tokens
''',
        'resets fired latents before adding the batch': '''
def update_dead_clock(tokens_since_fired, codes, dead_tokens):
    fired = (codes > 0).any(dim=0)
    counters = torch.where(fired, torch.zeros_like(tokens_since_fired), tokens_since_fired) + codes.shape[0]
    return counters, counters >= dead_tokens
''',
        'any non-zero code counts as firing': '''
def update_dead_clock(tokens_since_fired, codes, dead_tokens):
    fired = (codes != 0).any(dim=0)
    counters = torch.where(fired, torch.zeros_like(tokens_since_fired), tokens_since_fired + codes.shape[0])
    return counters, counters >= dead_tokens
''',
    },
    "decoder_weighted_l1": {
        'plain L1, decoder norms ignored': '''
def decoder_weighted_l1(f, W_dec):
    return f.sum(dim=-1).mean()
''',
        'squared decoder norms': '''
def decoder_weighted_l1(f, W_dec):
    return (f * W_dec.pow(2).sum(dim=1)).sum(dim=-1).mean()
''',
        'mean over latents instead of sum': '''
def decoder_weighted_l1(f, W_dec):
    return (f * W_dec.norm(dim=1)).mean()
''',
        'summed over tokens instead of averaged': '''
def decoder_weighted_l1(f, W_dec):
    return (f * W_dec.norm(dim=1)).sum()
''',
    },
    "fraction_of_loss_recovered": {
        'no shift: logits at t scored against the token at t': '''
def fraction_of_loss_recovered(tokens, clean_logits, spliced_logits, ablated_logits):
    def ce(logits):
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))
    c, s, a = ce(clean_logits), ce(spliced_logits), ce(ablated_logits)
    return float((a - s) / (a - c))
''',
        'the fraction lost, not recovered': '''
def fraction_of_loss_recovered(tokens, clean_logits, spliced_logits, ablated_logits):
    def ce(logits):
        return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    c, s, a = ce(clean_logits), ce(spliced_logits), ce(ablated_logits)
    return float((s - c) / (a - c))
''',
        'relative to the ablated loss alone': '''
def fraction_of_loss_recovered(tokens, clean_logits, spliced_logits, ablated_logits):
    def ce(logits):
        return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    c, s, a = ce(clean_logits), ce(spliced_logits), ce(ablated_logits)
    return float((a - s) / a)
''',
        'shifted the wrong way: logits at t+1 against the token at t': '''
def fraction_of_loss_recovered(tokens, clean_logits, spliced_logits, ablated_logits):
    def ce(logits):
        return torch.nn.functional.cross_entropy(logits[:, 1:].reshape(-1, logits.shape[-1]), tokens[:, :-1].reshape(-1))
    c, s, a = ce(clean_logits), ce(spliced_logits), ce(ablated_logits)
    return float((a - s) / (a - c))
''',
    },
    "geometric_median": {
        'the mean': '''
def geometric_median(x, n_iter=100, eps=1e-8):
    return x.mean(dim=0)
''',
        'the coordinate-wise median': '''
def geometric_median(x, n_iter=100, eps=1e-8):
    return x.median(dim=0).values
''',
        'weights proportional to distance instead of its inverse': '''
def geometric_median(x, n_iter=100, eps=1e-8):
    y = x.mean(dim=0)
    for _ in range(n_iter):
        w = (x - y).norm(dim=1).clamp_min(eps)
        y = (w[:, None] * x).sum(dim=0) / w.sum()
    return y
''',
        'a single Weiszfeld step': '''
def geometric_median(x, n_iter=100, eps=1e-8):
    y = x.mean(dim=0)
    w = 1.0 / (x - y).norm(dim=1).clamp_min(eps)
    return (w[:, None] * x).sum(dim=0) / w.sum()
''',
    },
    "auxk_loss": {
        'uses all latents, not only the dead ones': '''
def auxk_loss(x, x_hat, pre_acts, W_dec, dead, k_aux, coeff=1 / 32):
    if int(dead.sum()) == 0:
        return pre_acts.new_zeros(())
    e = (x - x_hat).detach()
    values, indices = pre_acts.topk(k_aux, dim=-1)
    z = torch.zeros_like(pre_acts).scatter(-1, indices, torch.relu(values))
    error = ((e - z @ W_dec) ** 2).sum(-1).mean()
    return coeff * error / ((e - e.mean(0)) ** 2).sum(-1).mean()
''',
        'forgets the normalisation': '''
def auxk_loss(x, x_hat, pre_acts, W_dec, dead, k_aux, coeff=1 / 32):
    n_dead = int(dead.sum())
    if n_dead == 0:
        return pre_acts.new_zeros(())
    e = (x - x_hat).detach()
    values, indices = pre_acts.masked_fill(~dead, float("-inf")).topk(min(k_aux, n_dead), dim=-1)
    z = torch.zeros_like(pre_acts).scatter(-1, indices, torch.relu(values))
    return coeff * ((e - z @ W_dec) ** 2).sum(-1).mean()
''',
        'normalised by the raw residual norm, not its spread around the mean': '''
def auxk_loss(x, x_hat, pre_acts, W_dec, dead, k_aux, coeff=1 / 32):
    n_dead = int(dead.sum())
    if n_dead == 0:
        return pre_acts.new_zeros(())
    e = (x - x_hat).detach()
    values, indices = pre_acts.masked_fill(~dead, float("-inf")).topk(min(k_aux, n_dead), dim=-1)
    z = torch.zeros_like(pre_acts).scatter(-1, indices, torch.relu(values))
    return coeff * ((e - z @ W_dec) ** 2).sum(-1).mean() / (e ** 2).sum(-1).mean()
''',
        'top-k over all latents, then drops the live ones': '''
def auxk_loss(x, x_hat, pre_acts, W_dec, dead, k_aux, coeff=1 / 32):
    if int(dead.sum()) == 0:
        return pre_acts.new_zeros(())
    e = (x - x_hat).detach()
    values, indices = pre_acts.topk(k_aux, dim=-1)
    z = torch.zeros_like(pre_acts).scatter(-1, indices, torch.relu(values)) * dead
    error = ((e - z @ W_dec) ** 2).sum(-1).mean()
    return coeff * error / ((e - e.mean(0)) ** 2).sum(-1).mean()
''',
        'residual not detached: AuxK pushes the main reconstruction': '''
def auxk_loss(x, x_hat, pre_acts, W_dec, dead, k_aux, coeff=1 / 32):
    n_dead = int(dead.sum())
    if n_dead == 0:
        return pre_acts.new_zeros(())
    e = x - x_hat
    values, indices = pre_acts.masked_fill(~dead, float("-inf")).topk(min(k_aux, n_dead), dim=-1)
    z = torch.zeros_like(pre_acts).scatter(-1, indices, torch.relu(values))
    error = ((e - z @ W_dec) ** 2).sum(-1).mean()
    return coeff * error / ((e - e.mean(0)) ** 2).sum(-1).mean()
''',
        'no ReLU on the auxiliary code': '''
def auxk_loss(x, x_hat, pre_acts, W_dec, dead, k_aux, coeff=1 / 32):
    n_dead = int(dead.sum())
    if n_dead == 0:
        return pre_acts.new_zeros(())
    e = (x - x_hat).detach()
    values, indices = pre_acts.masked_fill(~dead, float("-inf")).topk(min(k_aux, n_dead), dim=-1)
    z = torch.zeros_like(pre_acts).scatter(-1, indices, values)
    error = ((e - z @ W_dec) ** 2).sum(-1).mean()
    return coeff * error / ((e - e.mean(0)) ** 2).sum(-1).mean()
''',
        'forgets the coefficient': '''
def auxk_loss(x, x_hat, pre_acts, W_dec, dead, k_aux, coeff=1 / 32):
    n_dead = int(dead.sum())
    if n_dead == 0:
        return pre_acts.new_zeros(())
    e = (x - x_hat).detach()
    values, indices = pre_acts.masked_fill(~dead, float("-inf")).topk(min(k_aux, n_dead), dim=-1)
    z = torch.zeros_like(pre_acts).scatter(-1, indices, torch.relu(values))
    error = ((e - z @ W_dec) ** 2).sum(-1).mean()
    return error / ((e - e.mean(0)) ** 2).sum(-1).mean()
''',
        'returns a non-zero loss when no latent is dead': '''
def auxk_loss(x, x_hat, pre_acts, W_dec, dead, k_aux, coeff=1 / 32):
    e = (x - x_hat).detach()
    values, indices = pre_acts.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1)
    z = torch.zeros_like(pre_acts).scatter(-1, indices, torch.relu(values))
    error = ((e - z @ W_dec) ** 2).sum(-1).mean()
    return coeff * error / ((e - e.mean(0)) ** 2).sum(-1).mean()
''',
    },
}
