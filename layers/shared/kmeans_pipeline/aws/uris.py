"""s3://bucket/key URIs, parsed in one place (pure: no boto3 at import)."""

from __future__ import annotations

from kmeans_pipeline.errors import ModelArtifactError


def split_s3_uri(uri: str, *, prefix: bool = False) -> tuple[str, str]:
    """(bucket, key) of an s3://bucket/key URI of an object, or ModelArtifactError; with ``prefix``, the key may
    be a prefix (a channel's folder) or empty."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or (not prefix and (not key or key.endswith("/"))):
        raise ModelArtifactError(f"{uri} is not an s3://bucket/key URI of {'a prefix' if prefix else 'an object'}")
    return bucket, key
