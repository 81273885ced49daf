"""Serving: the scoring server (MLflow's protocol), batch predict and Docker build contexts."""
