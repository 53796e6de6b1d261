"""Fuzz targets for hashlookup (atheris); see docs/FUZZING.md.

targets.py defines the targets and the exceptions each one documents,
seeds.py makes their seed inputs from fixed seeds, run.py runs them
(`make fuzz`), and tests/test_fuzz.py replays the regression corpus in
regressions/<target>/ and runs a short fuzzing pass in `make test`.
"""
