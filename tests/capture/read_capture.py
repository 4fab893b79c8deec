"""Reads one model's capture folder with pyarrow (a reader that is not
aimass's) and prints what the tests check, as JSON.

    python read_capture.py CAPTURE_FOLDER/MODEL
"""

import json
import pathlib
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def read(folder):
    """Every whole file of one dataset: its rows, the tensor columns' types."""
    rows, datatypes, tables = [], {}, []
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    for path in files:
        table = pq.read_table(path)
        tables.append(table)
        for field in table.schema:
            if field.metadata and b"aimass:datatype" in field.metadata:
                datatypes[field.name] = field.metadata[b"aimass:datatype"].decode()
        for row in table.to_pylist():
            row["time"] = row["time"].isoformat()
            rows.append(row)
    return files, rows, datatypes, tables


def main():
    dataset = pathlib.Path(sys.argv[1])
    request_files, requests, datatypes, request_tables = read(dataset / "requests")
    feedback_files, feedback, _, feedback_tables = read(dataset / "feedback")
    joined = []
    if request_tables and feedback_tables:
        # The join as an analyst would write it, in Arrow.
        ids = pa.concat_tables(t.select(["id"]) for t in request_tables)
        truth = pa.concat_tables(feedback_tables)
        joined = ids.join(truth, "id", join_type="inner").select(["id", "label"]).to_pylist()
    files = request_files + feedback_files
    json.dump(
        {
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "requests": requests,
            "feedback": feedback,
            "datatypes": datatypes,
            "joined": joined,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
