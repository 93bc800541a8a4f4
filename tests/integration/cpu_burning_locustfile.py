"""A locustfile for tests: a user that burns its process's CPU, so Locust's own
"CPU usage above 90%" warning fires within seconds."""

import time

import locust.runners
from locust import User, constant, task

import loadkit.plugin  # noqa: F401 - --results, --check and --probe, as loadkit's users bring them

# Locust looks at its CPU every 10 s; a test of a few seconds needs it sooner.
locust.runners.CPU_MONITOR_INTERVAL = 1.0

BURN_SECONDS = 0.05


class CpuBurner(User):
    wait_time = constant(0)

    @task
    def burn(self):
        start = time.perf_counter()
        while time.perf_counter() - start < BURN_SECONDS:
            pass
        self.environment.events.request.fire(
            request_type="CPU", name="burn", response_time=(time.perf_counter() - start) * 1000.0,
            response_length=0, exception=None, context={},
        )
