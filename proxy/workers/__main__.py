"""`python -m proxy.workers --fd N --parent PID`: a worker process, as the control process starts it."""

import sys

from proxy.workers.worker import worker_main

sys.exit(worker_main())
