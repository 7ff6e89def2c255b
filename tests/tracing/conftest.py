import sys
from pathlib import Path

# The OTLP collector used by the proxy tests (tests/server/otlp_collector.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
