#!/usr/bin/env bash
# Runs inside LocalStack once it is ready (mounted at /etc/localstack/init/ready.d):
# the bucket liveingest writes segments, manifests and slot configuration to.
set -euo pipefail
bucket="${LIVEINGEST_BUCKET:-liveingest}"
awslocal s3api head-bucket --bucket "$bucket" 2>/dev/null || awslocal s3api create-bucket --bucket "$bucket"
echo "bucket $bucket ready"
