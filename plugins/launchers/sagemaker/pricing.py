"""Prices of common SageMaker training instances, for the cost estimate of ``--dry-run``.

On-demand list prices in USD per instance-hour for SageMaker *training* in us-east-1 (N. Virginia),
as listed on the Amazon SageMaker AI pricing page (https://aws.amazon.com/sagemaker/ai/pricing/);
recorded on :data:`PRICES_DATE` without a live check against the page, so verify them there. Prices differ by region and change over time; spot capacity is
billed at a discount that varies (up to about 90%). The estimate is an upper bound: instances x
price x the job's run-time limit. ``GPUS`` gives the default processes per instance.
"""

from __future__ import annotations

from typing import Any

PRICES_DATE = "2026-11-26"
PRICES_REGION = "us-east-1"

#: instance type -> (USD per hour on demand, GPUs)
INSTANCES: dict[str, tuple[float, int]] = {
    "ml.m5.large": (0.115, 0), "ml.m5.xlarge": (0.23, 0), "ml.m5.2xlarge": (0.461, 0),
    "ml.m5.4xlarge": (0.922, 0), "ml.m5.12xlarge": (2.765, 0), "ml.m5.24xlarge": (5.53, 0),
    "ml.c5.xlarge": (0.204, 0), "ml.c5.2xlarge": (0.408, 0), "ml.c5.4xlarge": (0.816, 0),
    "ml.c5.9xlarge": (1.836, 0), "ml.c5.18xlarge": (3.672, 0),
    "ml.g4dn.xlarge": (0.736, 1), "ml.g4dn.2xlarge": (0.94, 1), "ml.g4dn.4xlarge": (1.505, 1),
    "ml.g4dn.8xlarge": (2.72, 1), "ml.g4dn.12xlarge": (4.89, 4), "ml.g4dn.16xlarge": (5.44, 1),
    "ml.g5.xlarge": (1.408, 1), "ml.g5.2xlarge": (1.515, 1), "ml.g5.4xlarge": (2.03, 1),
    "ml.g5.8xlarge": (3.06, 1), "ml.g5.12xlarge": (7.09, 4), "ml.g5.16xlarge": (4.097, 1),
    "ml.g5.24xlarge": (10.18, 4), "ml.g5.48xlarge": (20.36, 8),
    "ml.p3.2xlarge": (3.825, 1), "ml.p3.8xlarge": (14.688, 4), "ml.p3.16xlarge": (28.152, 8),
    "ml.p4d.24xlarge": (37.688, 8),
}


def gpus(instance_type: str) -> int | None:
    """GPUs of ``instance_type``, or ``None`` when the table does not know it."""
    known = INSTANCES.get(instance_type)
    return known[1] if known else None


def estimate(instance_type: str, instance_count: int, seconds: int, *, jobs: int = 1,
             parallel: int = 1) -> dict[str, Any]:
    """The cost bound of ``jobs`` jobs of ``instance_count`` instances running at most ``seconds``.

    :param instance_type: SageMaker instance type.
    :param instance_count: instances per job.
    :param seconds: each job's run-time limit.
    :param jobs: jobs in all (a tuning study's trials).
    :param parallel: jobs at once (shown for information; the bound counts every job).
    :return: ``usd_per_hour`` (all instances of one job), ``max_usd`` (or ``None`` for an unknown
        type), ``basis`` and ``source``, as JSON values.
    """
    known = INSTANCES.get(instance_type)
    hours = seconds / 3600
    out: dict[str, Any] = {"instance_type": instance_type, "instance_count": instance_count, "max_hours": round(hours, 3),
                           "jobs": jobs, "source": f"on-demand list price, {PRICES_REGION}, recorded {PRICES_DATE}"}
    if known is None:
        out.update(usd_per_hour=None, max_usd=None,
                   basis=f"no price recorded for {instance_type}; known types: {', '.join(sorted(INSTANCES))}")
        return out
    per_hour = known[0] * instance_count
    out.update(usd_per_hour=round(per_hour, 4), max_usd=round(per_hour * hours * jobs, 2),
               basis=f"{jobs} job(s) x {instance_count} x {known[0]} USD/h x {hours:.3g} h run-time limit"
                     + (f", {parallel} at once" if jobs > 1 else ""))
    return out
