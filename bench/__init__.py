"""LabelLoop's benchmarks: one bench_*.py per benchmark (see README.md), built from bench/harness/."""
