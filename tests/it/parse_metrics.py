"""Parses an OpenMetrics exposition with the Prometheus project's own Python
parser (prometheus_client.openmetrics.parser, strict: it refuses malformed
text) and prints its samples as JSON lines: {"name", "labels", "value"}.

Used by tests/it/metrics.rs: `python3 parse_metrics.py < scrape.txt`.
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value}))
