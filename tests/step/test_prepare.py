"""Step 2: the data step validates every row, splits seeded and stratified, and writes SSE-KMS channels."""

from __future__ import annotations

import boto3
import numpy as np
import pytest

from kmeans_pipeline.aws.s3 import head_source, ranged_chunks
from kmeans_pipeline.data.splitter import StratifiedSplitter
from kmeans_pipeline.errors import DataValidationError, SourceObjectError
from kmeans_pipeline.steps.resolve_run import resolve_run
from offline.data_step import prepare_dataset as prepare_data
from testkit.aws import REGION, put_csv, read_text

START = "2026-11-23T10:00:00.000Z"


def config_for(settings, key: str, **overrides):
    # Raw numbers unless a test says otherwise: these tests are about the split (tests/step/test_treatment.py has the rest).
    return resolve_run({"dataKey": key, "standardize": False, **overrides}, "prep", START, settings, None)


def rows(n: int, codes: int = 3) -> str:
    return "tranCode,Amount\n" + "".join(f"{i % codes + 1},{10.0 + i}\n" for i in range(n))


def test_split_writes_headerless_channels_encrypted_with_the_stack_key(settings):
    put_csv(settings.data_bucket, "incoming/t.csv", rows(1000))
    config = config_for(settings, "incoming/t.csv")
    dataset = prepare_data(config, settings, boto3.client("s3", region_name=REGION))

    assert (dataset.train_rows, dataset.test_rows) == (800, 200)
    assert dataset.feature_columns == ["tranCode", "Amount"] and dataset.feature_dim == 2
    assert dataset.content_type == "text/csv;label_size=0"
    s3 = boto3.client("s3", region_name=REGION)
    for uri, count in ((dataset.train_uri, 800), (dataset.test_uri, 200)):
        bucket, prefix = uri[5:].split("/", 1)
        [obj] = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        head = s3.head_object(Bucket=bucket, Key=obj["Key"])
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == settings.kms_key_arn
        lines = read_text(bucket, obj["Key"]).splitlines()
        assert len(lines) == count and "tranCode" not in lines[0]
        assert all(len(line.split(",")) == 2 for line in lines)


def test_raw_object_is_left_exactly_as_it_was(settings):
    text = rows(50)
    put_csv(settings.data_bucket, "incoming/t.csv", text)
    prepare_data(config_for(settings, "incoming/t.csv", k=2), settings, boto3.client("s3", region_name=REGION))
    assert read_text(settings.data_bucket, "incoming/t.csv") == text


def channel_text(uri: str) -> str:
    bucket, prefix = uri[5:].split("/", 1)
    s3 = boto3.client("s3", region_name=REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    return "".join(read_text(bucket, key) for key in sorted(keys))


def test_split_is_seeded(settings):
    put_csv(settings.data_bucket, "incoming/t.csv", rows(300))
    s3 = boto3.client("s3", region_name=REGION)
    a = prepare_data(config_for(settings, "incoming/t.csv", seed=1), settings, s3)
    first = channel_text(a.test_uri)
    b = prepare_data(config_for(settings, "incoming/t.csv", seed=1), settings, s3)
    assert channel_text(b.test_uri) == first
    c = prepare_data(config_for(settings, "incoming/t.csv", seed=2), settings, s3)
    assert channel_text(c.test_uri) != first


def test_feature_columns_select_and_order_the_channel_columns(settings):
    put_csv(
        settings.data_bucket,
        "incoming/t.csv",
        "id,Amount,tranCode\n" + "".join(f"x{i},{i}.5,{i % 2}\n" for i in range(20)),
    )
    dataset = prepare_data(
        config_for(settings, "incoming/t.csv", featureColumns=["tranCode", "Amount"], k=2),
        settings,
        boto3.client("s3", region_name=REGION),
    )
    assert dataset.feature_columns == ["tranCode", "Amount"]
    line = channel_text(dataset.train_uri).splitlines()[0]
    code, amount = line.split(",")
    assert float(amount) % 1 == 0.5 and float(code) in (0.0, 1.0)


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_stratified_split_keeps_each_line_of_business_share(batch):
    splitter = StratifiedSplitter(0.2, seed=3)
    strata = np.array([b"a" if i % 10 else b"b" for i in range(10_000)])  # b is a 10% minority
    is_test = np.concatenate([splitter.assign(len(part), part) for part in np.array_split(strata, 10_000 // batch)])
    for stratum in (b"a", b"b"):
        members = strata == stratum
        assert abs(is_test[members].sum() - 0.2 * members.sum()) <= 1
    # In random places: the test rows of a large batch are not the first or the last ones.
    if batch == 1000:
        first = splitter.assign(1000)
        assert 0 < np.flatnonzero(first).mean() / 1000 < 1 and first[:200].sum() < 200


def test_crlf_bom_and_missing_final_newline_are_fine(settings):
    text = "\ufefftranCode,Amount\r\n" + "\r\n".join(f"1,{i}" for i in range(20))
    put_csv(settings.data_bucket, "incoming/t.csv", text.encode("utf-8"))
    dataset = prepare_data(
        config_for(settings, "incoming/t.csv", k=2), settings, boto3.client("s3", region_name=REGION)
    )
    assert dataset.train_rows + dataset.test_rows == 20
    assert dataset.feature_columns == ["tranCode", "Amount"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("tranCode,Amount\n", "no data rows"),
        ("tranCode,Amount\n1,2\n3,abc\n", r"line 3, column Amount: 'abc' is not a number"),
        ("tranCode,Amount\n1,2\n3,nan\n", "line 3, column Amount: 'nan' is not a finite number"),
        ("tranCode,Amount\n1,2\n1,inf\n", "line 3, column Amount: 'inf' is not a finite number"),
        ("tranCode,Amount\n1,2\n1,2,3\n", "line 3: 3 fields, but the header has 2"),
        ("tranCode;Amount\n1;2\n", "not comma-separated"),
        ("Amount,Amount\n1,2\n", "Amount more than once"),
        ("Code,Value\n1,2\n", "feature column"),
        ("tranCode,Amount\n1,2\n2,3\n", "at least k=3"),
    ],
)
def test_bad_csv_fails_naming_line_and_column(settings, text, message):
    put_csv(settings.data_bucket, "incoming/bad.csv", text)
    config = config_for(settings, "incoming/bad.csv", featureColumns=["tranCode", "Amount"])
    with pytest.raises(DataValidationError, match=message):
        prepare_data(config, settings, boto3.client("s3", region_name=REGION))
    assert read_text(settings.data_bucket, "incoming/bad.csv") == text


def test_missing_object_is_named(settings):
    with pytest.raises(SourceObjectError, match="incoming/nothing.csv does not exist"):
        prepare_data(config_for(settings, "incoming/nothing.csv"), settings, boto3.client("s3", region_name=REGION))


def test_handlers_return_uris_and_counts_never_data(settings_env, lambda_context):
    from functions.finish_dataset import app as finish
    from functions.merge_ranges import app as merge
    from functions.plan_data import app as plan
    from functions.split_range import app as split

    put_csv(settings_env.data_bucket, "incoming/t.csv", rows(100))
    config = config_for(settings_env, "incoming/t.csv").to_json()
    planned = plan.handler({"config": config}, lambda_context)
    assert planned["ranges"] == 1 and planned["itemsUri"].endswith("/work/ranges.json")
    item = {"index": 0, "part": 0, "source": None, "start": 0, "end": 0}
    s3 = boto3.client("s3", region_name=REGION)
    bucket, key = planned["itemsUri"][5:].split("/", 1)
    import json

    item = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())[0]
    assert split.handler({"config": config, "range": item}, lambda_context) == {
        "index": 0,
        "rows": 100,
        "problem": False,
    }
    assert merge.handler({"config": config}, lambda_context)["next"] == "done"
    out = finish.handler({"config": config}, lambda_context)
    assert set(out) >= {"trainUri", "testUri", "trainRows", "testRows", "featureDim"}
    for answer in (planned, out):
        assert len(str(answer)) < 2000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tranCode,Amount\n1,2\n1,1_000\n", "line 3, column Amount: '1_000' is not a number"),
        ("tranCode,Amount\n1,2\n1,\uff11\n", "line 3, column Amount: '\uff11' is not a number"),
        ("tranCode,Amount\n1,2\n1,1e999\n", "line 3, column Amount: '1e999' is beyond float32's range"),
        # A quoted field keeps its line break, so it is no number (it used to be glued into 12); the row is named
        # by the line it starts on.
        ('tranCode,Amount\n1,2\n"1\n2",3\n4,x\n', r"line 3, column tranCode: '1\\n2' is not a number"),
        (
            'tranCode,Amount\n1,2\n"1"2,3\n',
            "line 3: a closing quote must be followed by a comma or the end of the line",
        ),
        (
            "tranCode,Amount\n1,2\n1," + "9" * 200_000 + "\n",
            "line 3, column Amount: '9999999999999999999999999999999999999999' is beyond float32's range",
        ),
        ("tranCode,Amount\n1,2\n" + "1" * (2 << 20), "line 3 is longer than"),
        (b"tranCode,Amount\n1,2\n1,\xff\n", "line 3: not UTF-8"),
    ],
)
def test_values_a_spreadsheet_would_not_call_numbers_are_refused_with_their_line(settings, text, message):
    put_csv(settings.data_bucket, "incoming/odd.csv", text)
    config = config_for(settings, "incoming/odd.csv", featureColumns=["tranCode", "Amount"], k=1 + 1)
    with pytest.raises(DataValidationError, match=message):
        prepare_data(config, settings, boto3.client("s3", region_name=REGION))


def test_an_upload_event_trains_on_the_uploaded_version(settings):
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_bucket_versioning(Bucket=settings.data_bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=settings.data_bucket, Key="incoming/v.csv", Body=rows(20).encode())["VersionId"]
    s3.put_object(Bucket=settings.data_bucket, Key="incoming/v.csv", Body=b"replaced,by\n1,2\n")
    event = {
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": settings.data_bucket}, "object": {"key": "incoming/v.csv", "version-id": first}},
    }
    config = resolve_run(event, "versioned", START, settings, s3)
    dataset = prepare_data(config, settings, s3)
    assert dataset.source.version_id == first and dataset.feature_columns == ["tranCode", "Amount"]


def test_a_url_encoded_key_from_an_event_is_found(settings):
    put_csv(settings.data_bucket, "incoming/my data (1).csv", rows(20))
    event = {
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": settings.data_bucket}, "object": {"key": "incoming/my+data+%281%29.csv"}},
    }
    config = resolve_run(event, "encoded", START, settings, None)
    assert (
        prepare_data(config, settings, boto3.client("s3", region_name=REGION)).source.key == "incoming/my data (1).csv"
    )


def channel_objects(uri: str) -> list[dict]:
    bucket, prefix = uri[5:].split("/", 1)
    s3 = boto3.client("s3", region_name=REGION)
    return [
        s3.head_object(Bucket=bucket, Key=o["Key"]) | {"Key": o["Key"]}
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    ]


def big_rows(n: int) -> bytes:
    return b"tranCode,Amount\n" + b"".join(b"%d,%d.%03d\n" % (i % 5, i, i % 997) for i in range(n))


def test_large_channels_are_multipart_shards_of_about_the_configured_size(settings):
    # 1.3 M rows, about 20 MB: with 8 MB shards the training channel needs several objects, each written in
    # 8 MiB parts, every one encrypted with the stack's key; no row is lost or doubled.
    settings = settings.model_copy(update={"shard_megabytes": 8})
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=settings.data_bucket, Key="incoming/big.csv", Body=big_rows(1_300_000))
    dataset = prepare_data(config_for(settings, "incoming/big.csv"), settings, s3)
    train = channel_objects(dataset.train_uri)
    assert dataset.train_shards == len(train) >= 2
    assert all(o["ServerSideEncryption"] == "aws:kms" and o["SSEKMSKeyId"] == settings.kms_key_arn for o in train)
    assert all(o["ContentLength"] < 10 << 20 for o in train)
    assert any("-" in o["ETag"] for o in train)  # a multipart upload's ETag
    lines = channel_text(dataset.train_uri).splitlines() + channel_text(dataset.test_uri).splitlines()
    assert len(lines) == len(set(lines)) == 1_300_000
    # 20% of each window of 256 KiB, rounded at random: within a few rows of 20% of the whole.
    assert dataset.train_rows + dataset.test_rows == 1_300_000 and abs(dataset.test_rows - 260_000) < 30
    assert not s3.list_multipart_uploads(Bucket=settings.data_bucket).get("Uploads")


def test_several_training_instances_get_a_balanced_shard_each(settings):
    settings = settings.model_copy(update={"training_instance_count": 3})
    put_csv(settings.data_bucket, "incoming/t.csv", rows(1000))
    dataset = prepare_data(config_for(settings, "incoming/t.csv"), settings, boto3.client("s3", region_name=REGION))
    shards = channel_objects(dataset.train_uri)
    assert dataset.train_shards == len(shards) == 3
    texts = [read_text(settings.data_bucket, o["Key"]) for o in shards]
    assert sum(len(text.splitlines()) for text in texts) == 800
    # Balanced by volume, which is what an instance reads: within two lines of each other.
    assert max(map(len, texts)) - min(map(len, texts)) <= 2 * max(
        len(line) + 1 for text in texts for line in text.splitlines()
    )


def test_more_training_instances_than_rows_is_refused_clearly(settings):
    settings = settings.model_copy(update={"training_instance_count": 50})
    put_csv(settings.data_bucket, "incoming/t.csv", rows(40))
    with pytest.raises(DataValidationError, match="32 training rows for 50 training instances"):
        prepare_data(config_for(settings, "incoming/t.csv", k=2), settings, boto3.client("s3", region_name=REGION))


def test_a_failed_split_leaves_no_multipart_upload_behind(settings):
    settings = settings.model_copy(update={"shard_megabytes": 64})
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=settings.data_bucket, Key="incoming/late-error.csv", Body=big_rows(1_000_000) + b"1,oops\n")
    with pytest.raises(DataValidationError, match="line 1000002, column Amount: 'oops' is not a number"):
        prepare_data(config_for(settings, "incoming/late-error.csv"), settings, s3)
    assert not s3.list_multipart_uploads(Bucket=settings.data_bucket).get("Uploads")


def test_standardize_writes_z_scored_channels_with_the_training_statistics(settings):
    put_csv(
        settings.data_bucket,
        "incoming/t.csv",
        "id,Amount,tranCode\n" + "".join(f"x{i},{(i * 37) % 1000}.5,{i % 4}\n" for i in range(2000)),
    )
    s3 = boto3.client("s3", region_name=REGION)
    config = config_for(settings, "incoming/t.csv", featureColumns=["tranCode", "Amount"], standardize=True)
    dataset = prepare_data(config, settings, s3)
    assert [c.kind for c in dataset.treatment.columns] == [
        "numeric",
        "numeric",
    ] and "features/train/" in dataset.train_uri
    train = np.loadtxt(channel_text(dataset.train_uri).splitlines(), delimiter=",")
    raw_train = np.loadtxt(channel_text(dataset.train_uri.replace("features/", "")).splitlines(), delimiter=",")
    mean = np.array([c.mean for c in dataset.treatment.columns])
    std = np.array([c.std for c in dataset.treatment.columns])
    # Each z-score times its weight (the default correlation weights): two columns, so sqrt(1 + r^2) each.
    weight = np.array([c.weights[0] for c in dataset.treatment.columns])
    r = np.corrcoef(raw_train, rowvar=False)[0, 1]
    np.testing.assert_allclose(weight, np.sqrt(1 + r**2), rtol=1e-3)
    np.testing.assert_allclose(mean, raw_train.mean(0)) and np.testing.assert_allclose(std, raw_train.std(0))
    np.testing.assert_allclose(train, (raw_train - mean) / std * weight, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(train.std(0), weight, rtol=1e-5)
    test = np.loadtxt(channel_text(dataset.test_uri).splitlines(), delimiter=",")
    raw_test = np.loadtxt(channel_text(dataset.raw_test_uri).splitlines(), delimiter=",")
    np.testing.assert_allclose(test, (raw_test - mean) / std * weight, rtol=1e-6, atol=1e-6)
    assert len(train) == dataset.train_rows and len(test) == dataset.test_rows


def test_the_raw_object_is_read_whole_and_in_order_in_parallel_ranges(settings):
    s3 = boto3.client("s3", region_name=REGION)
    body = bytes(range(256)) * 1000 + b"tail"
    s3.put_object(Bucket=settings.data_bucket, Key="incoming/r.bin", Body=body)
    source = head_source(s3, settings.data_bucket, "incoming/r.bin")
    pieces = list(ranged_chunks(s3, source, range_bytes=7000, in_flight=3))
    assert b"".join(pieces) == body and len(pieces) == -(-len(body) // 7000)


def test_an_object_replaced_while_it_is_read_fails_instead_of_mixing_two(settings):
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=settings.data_bucket, Key="incoming/r.csv", Body=b"x" * 50_000)
    source = head_source(s3, settings.data_bucket, "incoming/r.csv")
    chunks = ranged_chunks(s3, source, range_bytes=1000, in_flight=2)
    next(chunks)
    s3.put_object(Bucket=settings.data_bucket, Key="incoming/r.csv", Body=b"y" * 50_000)
    with pytest.raises(SourceObjectError, match="cannot be read"):
        list(chunks)
