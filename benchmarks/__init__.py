"""nbconv's asv benchmark suite (see docs/benchmarks.md). Nothing in the package imports it."""
