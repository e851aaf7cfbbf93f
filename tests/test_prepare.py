"""Step 2: the data step validates every row, splits seeded and stratified, and writes SSE-KMS channels."""

from __future__ import annotations

import boto3
import pytest

from conftest import REGION, put_csv, read_text
from kmeans_pipeline.errors import DataValidationError, SourceObjectError
from kmeans_pipeline.prepare import StratifiedSplitter, prepare
from kmeans_pipeline.resolve import resolve

START = "2026-11-23T10:00:00.000Z"


def config_for(settings, key: str, **overrides):
    return resolve({"dataKey": key, **overrides}, "prep", START, settings, None)


def rows(n: int, codes: int = 3) -> str:
    return "tranCode,Amount\n" + "".join(f"{i % codes + 1},{10.0 + i}\n" for i in range(n))


def test_split_writes_headerless_channels_encrypted_with_the_stack_key(settings):
    put_csv(settings.data_bucket, "incoming/t.csv", rows(1000))
    config = config_for(settings, "incoming/t.csv")
    dataset = prepare(config, settings, boto3.client("s3", region_name=REGION))

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
    prepare(config_for(settings, "incoming/t.csv", k=2), settings, boto3.client("s3", region_name=REGION))
    assert read_text(settings.data_bucket, "incoming/t.csv") == text


def test_split_is_seeded(settings):
    put_csv(settings.data_bucket, "incoming/t.csv", rows(300))
    s3 = boto3.client("s3", region_name=REGION)
    a = prepare(config_for(settings, "incoming/t.csv", seed=1), settings, s3)
    first = read_text(settings.data_bucket, a.test_uri[5:].split("/", 1)[1] + "test.csv")
    b = prepare(config_for(settings, "incoming/t.csv", seed=1), settings, s3)
    assert read_text(settings.data_bucket, b.test_uri[5:].split("/", 1)[1] + "test.csv") == first
    c = prepare(config_for(settings, "incoming/t.csv", seed=2), settings, s3)
    assert read_text(settings.data_bucket, c.test_uri[5:].split("/", 1)[1] + "test.csv") != first


def test_feature_columns_select_and_order_the_channel_columns(settings):
    put_csv(settings.data_bucket, "incoming/t.csv", "id,Amount,tranCode\n" + "".join(f"x{i},{i}.5,{i % 2}\n" for i in range(20)))
    dataset = prepare(
        config_for(settings, "incoming/t.csv", featureColumns=["tranCode", "Amount"], k=2),
        settings,
        boto3.client("s3", region_name=REGION),
    )
    assert dataset.feature_columns == ["tranCode", "Amount"]
    line = read_text(settings.data_bucket, dataset.train_uri[5:].split("/", 1)[1] + "train.csv").splitlines()[0]
    code, amount = line.split(",")
    assert float(amount) % 1 == 0.5 and float(code) in (0.0, 1.0)


def test_stratified_split_keeps_each_line_of_business_share():
    splitter = StratifiedSplitter(0.2, seed=3)
    counts = {"a": [0, 0], "b": [0, 0]}
    for i in range(10_000):
        stratum = "a" if i % 10 else "b"  # b is a 10% minority
        counts[stratum][splitter.is_test(stratum)] += 1
    for train, test in counts.values():
        assert abs(test - 0.2 * (train + test)) <= 1


def test_crlf_bom_and_missing_final_newline_are_fine(settings):
    text = "\ufefftranCode,Amount\r\n" + "\r\n".join(f"1,{i}" for i in range(20))
    put_csv(settings.data_bucket, "incoming/t.csv", text.encode("utf-8"))
    dataset = prepare(config_for(settings, "incoming/t.csv", k=2), settings, boto3.client("s3", region_name=REGION))
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
        prepare(config, settings, boto3.client("s3", region_name=REGION))
    assert read_text(settings.data_bucket, "incoming/bad.csv") == text


def test_missing_object_is_named(settings):
    with pytest.raises(SourceObjectError, match="incoming/nothing.csv does not exist"):
        prepare(config_for(settings, "incoming/nothing.csv"), settings, boto3.client("s3", region_name=REGION))


def test_handler_returns_uris_and_counts_never_data(settings_env, lambda_context):
    from functions.prepare_data import app

    put_csv(settings_env.data_bucket, "incoming/t.csv", rows(100))
    config = config_for(settings_env, "incoming/t.csv")
    out = app.handler({"config": config.to_json()}, lambda_context)
    assert set(out) >= {"trainUri", "testUri", "trainRows", "testRows", "featureDim"}
    assert len(str(out)) < 2000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tranCode,Amount\n1,2\n1,1_000\n", "line 3, column Amount: '1_000' is not a number"),
        ("tranCode,Amount\n1,2\n1,\uff11\n", "line 3, column Amount: '\uff11' is not a number"),
        ("tranCode,Amount\n1,2\n1,1e999\n", "line 3, column Amount: '1e999' is too large"),
        ('tranCode,Amount\n1,2\n"1\n2",3\n4,x\n', "line 5, column Amount: 'x' is not a number"),
        ("tranCode,Amount\n1,2\n1," + "9" * 200_000 + "\n", "line 3: field larger than field limit"),
        ("tranCode,Amount\n1,2\n" + "1" * (2 << 20), "line 3 is longer than"),
        (b"tranCode,Amount\n1,2\n1,\xff\n", "line 3: not UTF-8"),
    ],
)
def test_values_a_spreadsheet_would_not_call_numbers_are_refused_with_their_line(settings, text, message):
    put_csv(settings.data_bucket, "incoming/odd.csv", text)
    config = config_for(settings, "incoming/odd.csv", featureColumns=["tranCode", "Amount"], k=1 + 1)
    with pytest.raises(DataValidationError, match=message):
        prepare(config, settings, boto3.client("s3", region_name=REGION))


def test_an_upload_event_trains_on_the_uploaded_version(settings):
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_bucket_versioning(Bucket=settings.data_bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=settings.data_bucket, Key="incoming/v.csv", Body=rows(20).encode())["VersionId"]
    s3.put_object(Bucket=settings.data_bucket, Key="incoming/v.csv", Body=b"replaced,by\n1,2\n")
    event = {"detail-type": "Object Created",
             "detail": {"bucket": {"name": settings.data_bucket}, "object": {"key": "incoming/v.csv", "version-id": first}}}
    config = resolve(event, "versioned", START, settings, s3)
    dataset = prepare(config, settings, s3)
    assert dataset.source.version_id == first and dataset.feature_columns == ["tranCode", "Amount"]


def test_a_url_encoded_key_from_an_event_is_found(settings):
    put_csv(settings.data_bucket, "incoming/my data (1).csv", rows(20))
    event = {"detail-type": "Object Created",
             "detail": {"bucket": {"name": settings.data_bucket}, "object": {"key": "incoming/my+data+%281%29.csv"}}}
    config = resolve(event, "encoded", START, settings, None)
    assert prepare(config, settings, boto3.client("s3", region_name=REGION)).source.key == "incoming/my data (1).csv"
