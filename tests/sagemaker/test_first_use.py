"""A first SageMaker command on a machine with no AWS set up: a plan still shows, and what AWS
refuses is one line with the remedy. No AWS is reached: credentials and the instance metadata
service are switched off, so botocore fails before sending anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from smkit import ENGINE_TESTS, ROLE

from bestiary.plugins.launchers.sagemaker.launcher import install_hint

ROOT = Path(__file__).resolve().parents[2]


def bare_aws_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=str(ENGINE_TESTS), BESTIARY_PLUGINS="toyzoo", HOME="/nonexistent",
               AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
               AWS_EC2_METADATA_DISABLED="true", **extra)
    return env


def bestiary(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bestiary", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_a_dry_run_without_a_configured_region_shows_a_plan_and_says_what_it_assumed() -> None:
    done = bestiary("train", "toy_mlp", "--dataset", "blobs", "--launcher", "sagemaker", "--role", ROLE,
                    "--dry-run", env=bare_aws_env())
    assert done.returncode == 0, done.stderr
    assert "note: no AWS region configured: showing us-east-1; pass --region" in done.stderr
    plan = json.loads(done.stdout[done.stdout.index("{"):])
    assert plan["region"] == "us-east-1" and "note" not in plan


def test_remote_jobs_without_credentials_is_one_line() -> None:
    done = bestiary("jobs", "list", "--remote", "sagemaker", env=bare_aws_env(AWS_REGION="us-east-1"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no usable AWS credentials"), done.stderr
    assert "aws configure" in lines[0]


def test_the_install_hint_names_where_this_bestiary_came_from() -> None:
    hint = install_hint()
    # this checkout installed (editable or not) from its folder: the index has no such package
    assert hint == f"pip install '{ROOT}[sagemaker]'", hint
