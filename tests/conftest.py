import os

# The kubernetes client honours proxy variables; keep test traffic on loopback.
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ["no_proxy"] = os.environ["NO_PROXY"]
