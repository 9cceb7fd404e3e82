"""Presigned URLs from botocore, for tests/it/media.rs to compare byte for byte.

Reads a JSON list of cases on stdin and prints a JSON list of URLs. The clock is
fixed by replacing botocore.auth.get_current_datetime, the function botocore's
SigV4 signers call for "now".
"""

import datetime
import json
import sys

import boto3
import botocore.auth
from botocore.config import Config


def presign(case):
    now = datetime.datetime.fromtimestamp(case["now"], datetime.timezone.utc).replace(tzinfo=None)
    botocore.auth.get_current_datetime = lambda: now
    client = boto3.client(
        "s3",
        region_name=case["region"],
        endpoint_url=case.get("endpoint"),
        aws_access_key_id=case["access_key"],
        aws_secret_access_key=case["secret"],
        aws_session_token=case.get("token"),
        config=Config(signature_version="s3v4", s3={"addressing_style": case["style"]}),
    )
    params = {"Bucket": case["bucket"], "Key": case["key"]}
    if case.get("disposition"):
        params["ResponseContentDisposition"] = case["disposition"]
    return client.generate_presigned_url("get_object", Params=params, ExpiresIn=case["expires"])


print(json.dumps([presign(c) for c in json.load(sys.stdin)]))
