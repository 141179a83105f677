"""Known-wrong answers to the exercises of notebooks/00_tracing.ipynb: each check must reject every one."""

WRONG = {
}
