"""A misbehaving bot for supervisor tests: ignores SIGTERM and never answers health checks."""

import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(1)
