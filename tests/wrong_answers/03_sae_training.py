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
    },
    "normalize_decoder_rows": {
        'columns normalised instead of rows': '''
def normalize_decoder_rows(W_dec):
    return W_dec / W_dec.norm(dim=0, keepdim=True).clamp_min(1e-8)
''',
    },
}
