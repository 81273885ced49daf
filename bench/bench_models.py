#!/usr/bin/env python
"""pyfunc predict overhead on a 2-row input: raw sklearn vs gitml's pyfunc vs MLflow's, in one run.

Target (issue 4): gitml pyfunc overhead <= 2x the raw model's predict.

    python bench/bench_models.py [--calls 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")


def per_call(fn, x, calls: int) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        fn(x)
    return (time.perf_counter() - t) / calls * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-mlflow", action="store_true")
    ap.add_argument("--model", choices=("lr", "rf"), default="lr",
                    help="LogisticRegression (default) or a 10-tree RandomForest")
    args = ap.parse_args()

    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    import gitml.pyfunc
    import gitml.sklearn

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.random(200), "b": rng.random(200), "c": rng.random(200)})
    y = (X.a + X.b > 1).astype(int)
    est = LogisticRegression() if args.model == "lr" else RandomForestClassifier(n_estimators=10, random_state=0)
    model = est.fit(X, y)
    two = X[:2]
    with tempfile.TemporaryDirectory() as tmp:
        gitml.sklearn.save_model(model, f"{tmp}/m", input_example=two)
        ours = gitml.pyfunc.load_model(f"{tmp}/m")
        contenders = {"raw sklearn": model.predict, "gitml pyfunc": ours.predict}
        if not args.no_mlflow:
            import mlflow.pyfunc

            contenders["mlflow pyfunc"] = mlflow.pyfunc.load_model(f"{tmp}/m").predict
        for fn in contenders.values():
            per_call(fn, two, 50)  # warm up
        res = {name: statistics.median(per_call(fn, two, args.calls) for _ in range(args.repeat))
               for name, fn in contenders.items()}
    print(f"\npredict on a 2-row DataFrame, median of {args.repeat} x {args.calls} calls")
    for name, ms in res.items():
        print(f"  {name:<14} {ms:7.3f} ms/call")
    print(f"  gitml pyfunc / raw = {res['gitml pyfunc'] / res['raw sklearn']:.2f}x (target <= 2)")
    if "mlflow pyfunc" in res:
        print(f"  mlflow pyfunc / gitml pyfunc = {res['mlflow pyfunc'] / res['gitml pyfunc']:.2f}x")


if __name__ == "__main__":
    main()
