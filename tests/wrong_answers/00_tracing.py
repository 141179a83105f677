"""Known-wrong answers to the exercises of notebooks/00_tracing.ipynb: each check must reject every one."""

WRONG = {
    "resid_difference": {
        "off by one block: reads the input of block `layer` (hidden_states[layer]), not its output": '''
def resid_difference(model, prompt_a, prompt_b, layer):
    states = []
    for text in (prompt_a, prompt_b):
        ids = torch.tensor([model.tokenizer(text).input_ids], device=model.hf.device)
        with torch.no_grad():
            states.append(model.hf(ids, output_hidden_states=True).hidden_states[layer][0].float())
    return (states[0] - states[1]).norm(dim=-1)
''',
        "squared distance instead of the L2 distance": '''
def resid_difference(model, prompt_a, prompt_b, layer):
    acts = tk.get_activations(model, [prompt_a, prompt_b], layer=layer)
    in_a, in_b = torch.as_tensor(acts.text_id == 0), torch.as_tensor(acts.text_id == 1)
    distance = torch.zeros(len(model.tokenizer(prompt_a).input_ids))
    distance[torch.as_tensor(acts.position)[in_a]] = (acts.rows[in_a] - acts.rows[in_b]).pow(2).sum(-1)
    return distance
''',
        "norm over the positions instead of the model dimension": '''
def resid_difference(model, prompt_a, prompt_b, layer):
    acts = tk.get_activations(model, [prompt_a, prompt_b], layer=layer)
    in_a, in_b = torch.as_tensor(acts.text_id == 0), torch.as_tensor(acts.text_id == 1)
    return (acts.rows[in_a] - acts.rows[in_b]).norm(dim=0)
''',
        "cosine distance instead of the L2 distance": '''
def resid_difference(model, prompt_a, prompt_b, layer):
    acts = tk.get_activations(model, [prompt_a, prompt_b], layer=layer)
    in_a, in_b = torch.as_tensor(acts.text_id == 0), torch.as_tensor(acts.text_id == 1)
    distance = torch.zeros(len(model.tokenizer(prompt_a).input_ids))
    cos = torch.cosine_similarity(acts.rows[in_a], acts.rows[in_b], dim=-1)
    distance[torch.as_tensor(acts.position)[in_a]] = 1 - cos
    return distance
''',
    },
    "logit_lens_top": {
        "reads the first position instead of the last": '''
def logit_lens_top(model, prompt):
    out = []
    for layer in range(model.n_layers):
        acts = tk.get_activations(model, [prompt], layer=layer)
        out.append(model.tokenizer.decode(model.unembed(acts.rows[:1]).argmax(-1)[0]))
    return out
''',
        "skips the final norm: unembeds the raw residual stream": '''
def logit_lens_top(model, prompt):
    blocks = list(range(model.n_layers))
    acts = tk.get_activations(model, [prompt], layer=blocks)
    head = model.hf.get_output_embeddings()
    with torch.no_grad():
        read_out = head(torch.stack([acts[b].rows[-1] for b in blocks]))
    return [model.tokenizer.decode(i) for i in read_out.argmax(-1)]
''',
        "off by one: reads each block's input (the embeddings, then blocks 0..n-2)": '''
def logit_lens_top(model, prompt):
    ids = torch.tensor([model.tokenizer(prompt).input_ids], device=model.hf.device)
    with torch.no_grad():
        states = model.hf(ids, output_hidden_states=True).hidden_states[:model.n_layers]
    read_out = model.unembed(torch.stack([h[0, -1] for h in states]))
    return [model.tokenizer.decode(i) for i in read_out.argmax(-1)]
''',
        "returns token ids instead of decoded strings": '''
def logit_lens_top(model, prompt):
    blocks = list(range(model.n_layers))
    acts = tk.get_activations(model, [prompt], layer=blocks)
    return model.unembed(torch.stack([acts[b].rows[-1] for b in blocks])).argmax(-1).tolist()
''',
    },
    "patch_effect": {
        "patches every position, not just `pos`": '''
def patch_effect(model, clean, corrupt, layer, pos, good_id, bad_id):
    store = {}

    def record(hidden):
        store["donor"] = hidden.clone()
        return hidden

    tk.logits(model, [clean], edits=[tk.Edit(layer, record)])
    patched = tk.logits(model, [corrupt], edits=[tk.Edit(layer, lambda hidden: store["donor"])])[0]
    return float(patched[good_id] - patched[bad_id])
''',
        "patches the wrong way: the corrupted activation into the clean run": '''
def patch_effect(model, clean, corrupt, layer, pos, good_id, bad_id):
    store = {}

    def record(hidden):
        store["donor"] = hidden[0, pos].clone()
        return hidden

    def transplant(hidden):
        hidden = hidden.clone()
        hidden[0, pos] = store["donor"]
        return hidden

    tk.logits(model, [corrupt], edits=[tk.Edit(layer, record)])
    patched = tk.logits(model, [clean], edits=[tk.Edit(layer, transplant)])[0]
    return float(patched[good_id] - patched[bad_id])
''',
        "returns the change from the unpatched corrupted run instead of the patched logit difference": '''
def patch_effect(model, clean, corrupt, layer, pos, good_id, bad_id):
    store = {}

    def record(hidden):
        store["donor"] = hidden[0, pos].clone()
        return hidden

    def transplant(hidden):
        hidden = hidden.clone()
        hidden[0, pos] = store["donor"]
        return hidden

    tk.logits(model, [clean], edits=[tk.Edit(layer, record)])
    patched = tk.logits(model, [corrupt], edits=[tk.Edit(layer, transplant)])[0]
    unpatched = tk.logits(model, [corrupt])[0]
    return float((patched[good_id] - patched[bad_id]) - (unpatched[good_id] - unpatched[bad_id]))
''',
        "off by one: takes the donor from block `layer - 1`": '''
def patch_effect(model, clean, corrupt, layer, pos, good_id, bad_id):
    store = {}

    def record(hidden):
        store["donor"] = hidden[0, pos].clone()
        return hidden

    def transplant(hidden):
        hidden = hidden.clone()
        hidden[0, pos] = store["donor"]
        return hidden

    tk.logits(model, [clean], edits=[tk.Edit(max(layer - 1, 0), record)])
    patched = tk.logits(model, [corrupt], edits=[tk.Edit(layer, transplant)])[0]
    return float(patched[good_id] - patched[bad_id])
''',
    },
    "mlp_ablation_effects": {
        "wrong sign: ablated minus unablated": '''
def mlp_ablation_effects(model, prompt, good_id, bad_id):
    def margin(edits):
        lg = tk.logits(model, [prompt], edits=edits)[0]
        return float(lg[good_id] - lg[bad_id])

    unablated = margin([])
    return np.array([margin([tk.Edit(L, torch.zeros_like, site="mlp")]) - unablated for L in range(model.n_layers)])
''',
        "zeroes the whole residual stream after the block, not the MLP output": '''
def mlp_ablation_effects(model, prompt, good_id, bad_id):
    def margin(edits):
        lg = tk.logits(model, [prompt], edits=edits)[0]
        return float(lg[good_id] - lg[bad_id])

    unablated = margin([])
    return np.array([unablated - margin([tk.Edit(L, torch.zeros_like)]) for L in range(model.n_layers)])
''',
        "zeroes the MLP output at the last position only": '''
def mlp_ablation_effects(model, prompt, good_id, bad_id):
    def margin(edits):
        lg = tk.logits(model, [prompt], edits=edits)[0]
        return float(lg[good_id] - lg[bad_id])

    def zero_last(out):
        out = out.clone()
        out[:, -1] = 0
        return out

    unablated = margin([])
    return np.array([unablated - margin([tk.Edit(L, zero_last, site="mlp")]) for L in range(model.n_layers)])
''',
        "returns the ablated logit differences, not how much they drop": '''
def mlp_ablation_effects(model, prompt, good_id, bad_id):
    out = []
    for L in range(model.n_layers):
        lg = tk.logits(model, [prompt], edits=[tk.Edit(L, torch.zeros_like, site="mlp")])[0]
        out.append(float(lg[good_id] - lg[bad_id]))
    return np.array(out)
''',
    },
    "attribution_patching": {
        "wrong sign: the difference points from clean to corrupted": '''
def attribution_patching(model, clean, corrupt, layer, good_id, bad_id):
    block = model.hf.get_submodule(model.layout.blocks)[layer]
    seen = {}

    def as_leaf(module, args, output):
        seen["x"] = output.detach().requires_grad_(True)
        return seen["x"]

    def margin(text):
        ids = torch.tensor([model.tokenizer(text).input_ids], device=model.hf.device)
        lg = model.hf(ids).logits[0, -1]
        return lg[good_id] - lg[bad_id]

    handle = block.register_forward_hook(as_leaf)
    try:
        with torch.no_grad():
            margin(clean)
        x_clean = seen["x"][0]
        with torch.enable_grad():
            margin(corrupt).backward()
        x_corrupt, grad = seen["x"][0].detach(), seen["x"].grad[0]
    finally:
        handle.remove()
    return ((x_corrupt - x_clean) * grad).sum(-1)
''',
        "missing difference: gradient times the clean activation alone": '''
def attribution_patching(model, clean, corrupt, layer, good_id, bad_id):
    block = model.hf.get_submodule(model.layout.blocks)[layer]
    seen = {}

    def as_leaf(module, args, output):
        seen["x"] = output.detach().requires_grad_(True)
        return seen["x"]

    def margin(text):
        ids = torch.tensor([model.tokenizer(text).input_ids], device=model.hf.device)
        lg = model.hf(ids).logits[0, -1]
        return lg[good_id] - lg[bad_id]

    handle = block.register_forward_hook(as_leaf)
    try:
        with torch.no_grad():
            margin(clean)
        x_clean = seen["x"][0]
        with torch.enable_grad():
            margin(corrupt).backward()
        grad = seen["x"].grad[0]
    finally:
        handle.remove()
    return (x_clean * grad).sum(-1)
''',
        "gradient taken on the clean run instead of the corrupted run": '''
def attribution_patching(model, clean, corrupt, layer, good_id, bad_id):
    block = model.hf.get_submodule(model.layout.blocks)[layer]
    seen = {}

    def as_leaf(module, args, output):
        seen["x"] = output.detach().requires_grad_(True)
        return seen["x"]

    def margin(text):
        ids = torch.tensor([model.tokenizer(text).input_ids], device=model.hf.device)
        lg = model.hf(ids).logits[0, -1]
        return lg[good_id] - lg[bad_id]

    handle = block.register_forward_hook(as_leaf)
    try:
        with torch.no_grad():
            margin(corrupt)
        x_corrupt = seen["x"][0]
        with torch.enable_grad():
            margin(clean).backward()
        x_clean, grad = seen["x"][0].detach(), seen["x"].grad[0]
    finally:
        handle.remove()
    return ((x_clean - x_corrupt) * grad).sum(-1)
''',
        "sums over positions too: one number for the whole block": '''
def attribution_patching(model, clean, corrupt, layer, good_id, bad_id):
    block = model.hf.get_submodule(model.layout.blocks)[layer]
    seen = {}

    def as_leaf(module, args, output):
        seen["x"] = output.detach().requires_grad_(True)
        return seen["x"]

    def margin(text):
        ids = torch.tensor([model.tokenizer(text).input_ids], device=model.hf.device)
        lg = model.hf(ids).logits[0, -1]
        return lg[good_id] - lg[bad_id]

    handle = block.register_forward_hook(as_leaf)
    try:
        with torch.no_grad():
            margin(clean)
        x_clean = seen["x"][0]
        with torch.enable_grad():
            margin(corrupt).backward()
        x_corrupt, grad = seen["x"][0].detach(), seen["x"].grad[0]
    finally:
        handle.remove()
    return ((x_clean - x_corrupt) * grad).sum().reshape(1)
''',
    },
    "mean_difference_vector": {
        "wrong sign: negative minus positive": '''
def mean_difference_vector(model, positive, negative, layer):
    pos = tk.get_activations(model, positive, layer=layer, reduce="mean").mean(0)
    neg = tk.get_activations(model, negative, layer=layer, reduce="mean").mean(0)
    return neg - pos
''',
        "averages all tokens together, so long prompts weigh more": '''
def mean_difference_vector(model, positive, negative, layer):
    pos = tk.get_activations(model, positive, layer=layer)
    neg = tk.get_activations(model, negative, layer=layer)
    keep_pos, keep_neg = torch.as_tensor(~pos.sink), torch.as_tensor(~neg.sink)
    return pos.rows[keep_pos].mean(0) - neg.rows[keep_neg].mean(0)
''',
        "uses the last token of each prompt instead of the mean over tokens": '''
def mean_difference_vector(model, positive, negative, layer):
    pos = tk.get_activations(model, positive, layer=layer, reduce="last").mean(0)
    neg = tk.get_activations(model, negative, layer=layer, reduce="last").mean(0)
    return pos - neg
''',
        "normalises the vector to unit length": '''
def mean_difference_vector(model, positive, negative, layer):
    pos = tk.get_activations(model, positive, layer=layer, reduce="mean").mean(0)
    neg = tk.get_activations(model, negative, layer=layer, reduce="mean").mean(0)
    return (pos - neg) / (pos - neg).norm()
''',
    },
}
