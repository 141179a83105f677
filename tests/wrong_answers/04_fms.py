"""Known-wrong answers to the exercises of notebooks/04_fms.ipynb: each check must reject every one."""

WRONG = {
}
