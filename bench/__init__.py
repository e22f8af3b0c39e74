"""beamlet's kernel benchmarks: run them with `./dev bench` (see bench/run.py)."""
