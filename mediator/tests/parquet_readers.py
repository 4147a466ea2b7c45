#!/usr/bin/env python3
"""Reads a Parquet sink dataset with pyarrow.dataset, DuckDB and (when installed) PySpark.

Usage: parquet_readers.py DIR ROWS RECORD_ID FLOW_START_MS OCTETS

DIR is the sink's root; ROWS the number of flow records written; RECORD_ID, FLOW_START_MS and
OCTETS describe one of them. Exits non-zero on any mismatch; prints "SKIPPED: ..." for a reader
that is not installed (pyspark is optional; pyarrow and duckdb are required).
Packages: pip install --target ~/.cache/supernetflow/py pyarrow duckdb (and pyspark with Java 17).
"""
import datetime as dt
import os
import sys
import time


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def main():
    # PySpark turns timestamps into naive datetimes in the process's zone: make it UTC.
    os.environ["TZ"] = "UTC"
    time.tzset()
    root, rows, rid, start_ms, octets = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    table = os.path.join(root, "flow_records")
    want_ts = dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.timezone.utc)

    import pyarrow as pa
    import pyarrow.dataset as ds

    d = ds.dataset(table, format="parquet", partitioning="hive")
    t = d.to_table()
    if t.num_rows != rows:
        fail(f"pyarrow: {t.num_rows} rows, want {rows}")
    ty = t.schema.field("flow_start_ms").type
    if not (pa.types.is_timestamp(ty) and ty.unit == "ms" and ty.tz in ("+00:00", "UTC")):
        fail(f"pyarrow: flow_start_ms is {ty}")
    for part in ("date", "hour"):
        if part not in t.schema.names:
            fail(f"pyarrow: no hive partition column {part}")
    one = t.filter(ds.field("record_id") == rid).to_pylist()
    if len(one) != 1 or one[0]["octets"] != octets or one[0]["flow_start_ms"] != want_ts:
        fail(f"pyarrow: record {rid}: {one[:1]}")
    ext = t.column("extensions").type
    print(f"pyarrow {pa.__version__}: {t.num_rows} rows, {len(d.files)} files, flow_start_ms {ty}, extensions {ext}")

    import duckdb

    con = duckdb.connect()
    glob = os.path.join(table, "**", "*.parquet")
    n, hours = con.execute(
        f"select count(*), count(distinct hour) from read_parquet('{glob}', hive_partitioning=1)"
    ).fetchone()
    if n != rows:
        fail(f"duckdb: {n} rows, want {rows}")
    got = con.execute(
        f"select octets, epoch_ms(flow_start_ms), typeof(flow_start_ms), len(extensions) "
        f"from read_parquet('{glob}', hive_partitioning=1) where record_id = ?",
        [rid],
    ).fetchall()
    if len(got) != 1 or got[0][0] != octets or got[0][1] != start_ms:
        fail(f"duckdb: record {rid}: {got}")
    print(f"duckdb {duckdb.__version__}: {n} rows over {hours} hours, flow_start_ms {got[0][2]}")

    try:
        from pyspark.sql import SparkSession
    except ImportError:
        print("SKIPPED: pyspark is not installed (pip install --target ~/.cache/supernetflow/pyspark pyspark)")
        return
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("snf-parquet-readers")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    try:
        df = spark.read.parquet(table)
        n = df.count()
        if n != rows:
            fail(f"spark: {n} rows, want {rows}")
        ty = dict(df.dtypes)["flow_start_ms"]
        if ty != "timestamp":
            fail(f"spark: flow_start_ms is {ty}")
        r = df.where(df.record_id == rid).select("octets", "flow_start_ms", "hour", "extensions").collect()
        if len(r) != 1 or r[0]["octets"] != octets:
            fail(f"spark: record {rid}: {r}")
        got_ms = int(r[0]["flow_start_ms"].replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
        if got_ms != start_ms:
            fail(f"spark: flow_start_ms {r[0]['flow_start_ms']} = {got_ms}, want {start_ms}")
        hours = sorted(x["hour"] for x in df.select("hour").distinct().collect())
        print(f"spark {spark.version}: {n} rows, flow_start_ms {ty}, hours {hours}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
