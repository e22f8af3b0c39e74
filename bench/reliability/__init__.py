"""beamlet under hostile input, faults and load: `./dev reliability [quick|full]`.

Five parts, each a printed table (figures in docs/reliability.md): ETF decoder fuzzing,
a differential run against Erlang's `binary_to_term`, attacks on a node in a subprocess,
calls under random kills (chaos) and a soak. tests/test_reliability.py runs each briefly.
"""
