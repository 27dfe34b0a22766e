"""Benchmark: the Flex integration adds no latency on the approved path. `python -m bench`."""
