"""Terminal tables of a results dict (radedge.bench.format_table)."""
from __future__ import annotations

from typing import Any

from radedge.bench import describe_machine, format_table

LATENCY_COLUMNS = (("label", "variant"), ("batch", "batch"), ("sequence", "seq"), ("image_size", "size"),
                   ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"),
                   ("throughput_per_s", "items/s"), ("fraction_of_peak", "of peak"), ("peak_rss_mb", "RSS MiB"))
E2E_COLUMNS = (("task", "task"), ("label", "labeler / scorer"), ("role", "role"), ("items", "items"),
               ("throughput_per_s", "items/s"), ("ratio_vs_default", "x default"), ("load_s", "load s"),
               ("peak_rss_mb", "RSS MiB"), ("source", "measured by"))
ACCURACY_COLUMNS = (("task", "task"), ("model", "model"), ("split", "split"), ("n", "n"), ("metric", "metric"),
                    ("value", "value"), ("source", "measured by"))
ROOFLINE_COLUMNS = (("model", "model"), ("precision", "prec"), ("engine", "engine"), ("what", "what"),
                    ("flops_per_item", "FLOPs/item"), ("throughput_per_s", "items/s"),
                    ("achieved_gops", "GOP/s"), ("peak_gops", "peak"), ("fraction_of_peak", "fraction"))

DICOM_COLUMNS = (("transfer_syntax", "transfer syntax"), ("mode", "decoded"), ("files", "files"),
                 ("read_ms", "read ms"), ("decode_ms", "decode ms"), ("lut_ms", "LUTs ms"),
                 ("preprocess_ms", "preprocess ms"), ("prepare_ms", "prepare ms"), ("inference_ms", "inference ms"),
                 ("inference_share", "inference share"))
PIPELINE_COLUMNS = (("group", "files of"), ("mode", "decoded"), ("files", "files"), ("workers", "workers"),
                    ("images_per_s", "images/s"), ("steady_images_per_s", "after the first images/s"))

MEMORY_COLUMNS = (("files", "files"), ("workers", "workers"), ("seconds", "seconds"), ("files_per_s", "files/s"),
                  ("peak_main_mb", "peak main MiB"), ("peak_tree_mb", "peak tree MiB"),
                  ("tree_mb_first_half_max", "tree 1st half MiB"), ("tree_mb_second_half_max", "tree 2nd half MiB"),
                  ("returncode", "rc"))


def print_tables(results: dict[str, Any]) -> None:
    print(f"machine: {describe_machine(results.get('machine') or {})}")
    imp = results.get("import_time") or {}
    if imp:
        print(f"import radedge: {imp['median_s'] * 1e3:.0f} ms (median of {imp['repeats']} fresh interpreters)")
    peaks = results.get("peaks") or {}
    if peaks:
        print(f"measured peaks: fp32 {peaks.get('fp32_gflops')} GFLOP/s (numpy), {peaks.get('ort_fp32_gflops')} "
              f"(onnxruntime); int8 {peaks.get('int8_gops')} GOP/s (onnxruntime MatMulInteger)")
    for title, key, columns in (("graph latency (synthetic inputs)", "latency", LATENCY_COLUMNS),
                                ("end to end (same inputs, same run)", "end_to_end", E2E_COLUMNS),
                                ("accuracy", "accuracy", ACCURACY_COLUMNS),
                                ("roofline", "roofline", ROOFLINE_COLUMNS)):
        rows = results.get(key) or []
        if rows:
            print(f"\n## {title}\n" + format_table(rows, columns))
    for model in results.get("models", []):
        print(f"load {model['label']}: {model['load_s'] * 1e3:.0f} ms, {model['model_bytes'] / 2**20:.1f} MiB graph")
    dicom = results.get("dicom") or {}
    if dicom.get("rows"):
        print(f"\n## DICOM scoring ({dicom.get('model')})\n" + format_table(dicom["rows"], DICOM_COLUMNS))
        if dicom.get("pipeline"):
            print(format_table(dicom["pipeline"], PIPELINE_COLUMNS))
    if dicom.get("memory"):
        print("\n## score-dicoms memory vs folder size\n" + format_table(dicom["memory"], MEMORY_COLUMNS))
    for n in results.get("notes", []):
        print(f"note: {n}")
    for e in results.get("errors", []):
        print(f"ERROR in {e['section']}: {e['error']}")
