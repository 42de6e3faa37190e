from django.db import models


class WorkerHeartbeat(models.Model):
    """Proof that beat's schedule reaches a worker: one row per periodic job, bumped by the worker."""

    name = models.CharField(max_length=64, unique=True)
    last_at = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_at:%Y-%m-%d %H:%M:%S} (×{self.count})"
