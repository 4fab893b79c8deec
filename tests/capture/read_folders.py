"""Reads each request dataset of one model's capture as a whole folder, the
way an analyst would (pyarrow.parquet.read_table and pyarrow.dataset, which
take one file's schema for the folder), and prints what each reader saw, as
JSON.

    python read_folders.py CAPTURE_FOLDER/MODEL
"""

import json
import pathlib
import sys

import pyarrow.dataset as ds
import pyarrow.parquet as pq


def main():
    model = pathlib.Path(sys.argv[1])
    seen = {}
    for folder in sorted(model.glob("requests*")):
        table = pq.read_table(folder)
        dataset = ds.dataset(folder, format="parquet").to_table()
        files = sorted(folder.glob("*.parquet"))
        # What each file holds, read on its own: the folder reads must
        # agree with it.
        by_file = [pq.read_table(path) for path in files]
        seen[folder.name] = {
            "files": len(files),
            "rows": table.num_rows,
            "dataset_rows": dataset.num_rows,
            "columns": table.column_names,
            "dataset_columns": dataset.column_names,
            "file_columns": sorted({c for t in by_file for c in t.column_names}),
            "file_rows": sum(t.num_rows for t in by_file),
        }
    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    main()
