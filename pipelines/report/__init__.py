"""`python -m pipelines.report OUTPUT`: one self-contained HTML page over the jobs' outputs.

OUTPUT is an output folder (one sub-folder per job, or a single job's folder) or a BigQuery
dataset; the tables go through DuckDB either way, the charts are PNGs beside report.html.
"""
