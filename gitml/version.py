"""gitml's version (as ``mlflow.version.VERSION``); the bottom layer, so any module may read it."""

VERSION = "0.1.0"
