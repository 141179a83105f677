"""Known-wrong answers to the exercises of notebooks/01_shortcuts.ipynb: each check must reject every one."""

WRONG = {
    "add_decoy": {
        'rows and columns of the corner swapped': '''
def add_decoy(images, decoy_labels, corners, patch_size=4):
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
def add_decoy(images, decoy_labels, corners, patch_size=4):
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
    },
    "project_out": {
        'direction not normalised': '''
def project_out(X, direction):
    u = np.asarray(direction, dtype=np.float64)
    return np.asarray(X, dtype=np.float64) - np.outer(X @ u, u)
''',
    },
}
