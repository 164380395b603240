"""`make bench` (`python -m bench`): the speed and memory figures of README.md's Tests section, measured here.

Every figure is shown next to a reference measured in the same run, as a ratio, because the
machines this runs on are shared and noisy: an absolute number alone would say more about the
neighbours than about the code. The benchmark starts its own embedded emulator on a free
loopback port and stops it at the end (also on Ctrl-C). Results: a table in the terminal and
the same figures as JSON in results/bench.json. Nothing here is asserted by the test suite.

Modules: report (figures, ratios, percentiles, the JSON document; pure), records (realistic
stream records and Firehose events; pure), timing and profiling (best-of alternation, cProfile
text), procs (/proc RSS and CPU), stack (own emulator, per-run pipeline settings), one module
per figure (transform_rate, write_rate, pipeline_rate, lake_queries with biglake, a large
synthetic lake, startup for `make up` and `make demo`), and main (flags, orchestration, the
terminal table and results/bench.json).
"""
