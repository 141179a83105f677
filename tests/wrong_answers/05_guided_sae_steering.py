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
    },
    "beta_scaled_direction": {
        'beta without dividing by ||d_i||': '''
def beta_scaled_direction(h, d_i, alpha):
    return alpha * h.norm(dim=-1, keepdim=True) * d_i
''',
    },
    "balanced_gamma": {
        'toward and away swapped': '''
def balanced_gamma(f_i, alpha):
    return f_i if alpha > 0 else 1.0 - f_i
''',
    },
}
