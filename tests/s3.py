"""A boto3 client of a test's S3-compatible server, made from the environment an operator would
give the studio (``STUDIO_S3_*``), so a test reads the bucket the way the studio writes it."""

from __future__ import annotations

from collections.abc import Mapping


def s3_client(env: Mapping[str, str]):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["STUDIO_S3_ENDPOINT_URL"],
        region_name=env["STUDIO_S3_REGION"],
        aws_access_key_id=env["STUDIO_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["STUDIO_S3_SECRET_ACCESS_KEY"],
    )
