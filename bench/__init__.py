"""pyngress benchmarks: `python -m bench` (nginx vs pyngress), `bench/micro.py`, `bench/locustfile.py`."""
