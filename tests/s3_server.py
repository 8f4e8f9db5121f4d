"""A real S3 API on 127.0.0.1 for tests: moto's server in a child process on a free port.

s3fs is asynchronous, so moto's in-process mock cannot intercept it; the server speaks real HTTP on
loopback instead, and child processes of a test (writers killed with SIGKILL) reach it the same way.
Credentials are dummies, and `AWS_EC2_METADATA_DISABLED` keeps botocore from probing the instance-metadata
address (off this machine). `auth_after=n` makes moto enforce IAM after n unauthenticated calls, so a test
can create users with their own policies (a read-only reader) and then be held to them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocalS3:
    endpoint: str

    def client(self, service: str = "s3", keys: tuple[str, str] = ("testing", "testing")):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=keys[0], aws_secret_access_key=keys[1])  # fmt: skip

    def new_bucket(self) -> str:
        name = f"rns-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def user(self, name: str, actions: list[str]) -> tuple[str, str]:
        """An IAM user allowed only `actions` on every resource; returns its access key pair."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        statement = {"Effect": "Allow", "Action": actions, "Resource": "*"}
        policy = {"Version": "2012-10-17", "Statement": [statement]}
        iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]


@contextmanager
def local_s3(auth_after: int | None = None) -> Iterator[LocalS3]:
    """Run moto on 127.0.0.1, point the AWS environment at it, and stop it (and restore) afterwards."""
    port = free_port()
    env = {**os.environ}
    if auth_after is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(auth_after)
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    saved = {key: os.environ.get(key) for key in [*S3_ENV, "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"]}
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert server.poll() is None, "the moto server exited at start"
                assert time.monotonic() < deadline, f"moto did not listen on 127.0.0.1:{port} in time"
                time.sleep(0.1)
        os.environ.update(S3_ENV)
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
        forget_cached_filesystems()
        yield LocalS3(os.environ["AWS_ENDPOINT_URL"])
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        forget_cached_filesystems()


def forget_cached_filesystems() -> None:
    """fsspec caches filesystems by their arguments; one made for other credentials must not be reused."""
    import fsspec

    fsspec.filesystem("s3").clear_instance_cache()


@contextmanager
def credentials(keys: tuple[str, str]) -> Iterator[None]:
    """Use another access key pair for the duration (e.g. a read-only user's)."""
    saved = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = keys
    forget_cached_filesystems()
    try:
        yield
    finally:
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = saved
        forget_cached_filesystems()
