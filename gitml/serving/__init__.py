"""Serving: the scoring server (MLflow's protocol), batch predict and Docker build contexts."""

#: Threads predicting in each ``gitml serve`` worker (``--threads``). One is fastest for a model
#: whose predict holds the GIL, as small scikit-learn models do (more threads only pass the GIL
#: back and forth: 2,581 req/s with 1, 2,385 with 2, 2,207 with 4 in bench_serving); scale with
#: --workers, as gunicorn advises for CPU-bound work. A model that releases the GIL while it
#: predicts (PyTorch, large numpy work) gains from more.
DEFAULT_SERVE_THREADS = 1
