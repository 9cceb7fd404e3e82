"""prt-gate's redaction engine for Django's own log records.

The detectors are prt-gate's built-in ones, read from ``detectors.json``
(generated from the gate's ``src/redact/detectors.rs``; never edit it by
hand). The engine here follows the gate's step for step so both write the
same bytes for the same line: a detector runs only when one of its anchors
occurs (ASCII case-insensitive); each yields the spans of secrets (whole
match, named groups, or cookie values); overlapping spans are joined and keep
the label of the earlier detector; each span becomes ``[REDACTED:<name>]``.
The gate's test suite runs ``prt-gate redact`` and ``python3 -m
prt_gate_auth.redact`` over one corpus and compares the outputs.

``RedactingFilter`` is a ``logging.Filter``: put it on **every** handler
(console and files) in ``LOGGING`` (see deploy/django/README.md). It rewrites
the record's message (arguments merged in), its formatted exception and stack
text, so nothing a formatter writes from them can carry a secret.

Command line: ``python3 -m prt_gate_auth.redact < in > out`` filters lines.
"""

import json
import logging
import os
import re
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _flags(s):
    f = 0
    if "i" in s:
        f |= re.IGNORECASE
    if "s" in s:
        f |= re.DOTALL
    if "m" in s:
        f |= re.MULTILINE
    if "x" in s:
        f |= re.VERBOSE
    return f


def _not_redacted(v):
    return not v.startswith(b"[REDACTED")


def _looks_like_token(v):
    return _not_redacted(v) and (len(v) >= 20 or any(c in b"0123456789._~+/=-" for c in v))


_CHECKS = {None: None, "not_redacted": _not_redacted, "looks_like_token": _looks_like_token}
_WS = b" \t\n\r\x0b\x0c"


class _Detector:
    def __init__(self, row):
        self.name = row["name"]
        self.anchors = [a.lower().encode() for a in row["anchors"]]
        self.regex = re.compile(row["regex"].encode(), _flags(row["flags"]))
        self.secret = row["secret"]
        self.check = _CHECKS[row["check"]]
        self.requires = row["requires"].encode() if row["requires"] else None
        self.groups = list(self.regex.groupindex)
        self.label = f"[REDACTED:{self.name}]".encode()


class Redactor:
    def __init__(self, path=os.path.join(_HERE, "detectors.json")):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        self.detectors = [_Detector(r) for r in doc["detectors"]]
        self.cookie_attributes = {a.encode() for a in doc["cookie_attributes"]}

    def find(self, text):
        """Sorted, non-overlapping (start, end, detector index) spans."""
        lower = text.lower()  # ASCII only for bytes, like the gate's prefilter
        hits = []
        for i, d in enumerate(self.detectors):
            if not any(a in lower for a in d.anchors):
                continue
            if d.requires is not None and d.requires not in text:
                continue

            def push(start, end, i=i, d=d):
                if start < end and (d.check is None or d.check(text[start:end])):
                    hits.append((start, end, i))

            if d.secret == "whole" or (d.secret == "named" and not d.groups):
                for m in d.regex.finditer(text):
                    push(m.start(), m.end())
            elif d.secret == "named":
                for m in d.regex.finditer(text):
                    for g in d.groups:
                        if m.start(g) >= 0:
                            push(m.start(g), m.end(g))
            else:  # cookie_values
                for m in d.regex.finditer(text):
                    if m.start("c") >= 0:
                        self._cookie_values(text, m.start("c"), m.end("c"), push)
        return _merge(hits)

    def _cookie_values(self, text, start, end, push):
        seg = start
        while seg < end:
            stops = [p for p in (text.find(b";", seg, end), text.find(b",", seg, end)) if p >= 0]
            stop = min(stops) if stops else end
            part = text[seg:stop]
            lead = len(part) - len(part.lstrip(_WS))
            eq = part.find(b"=")
            tail = len(part.rstrip(_WS))
            if eq >= 0:
                name = part[lead:eq].strip(_WS)
                if name.lower() not in self.cookie_attributes:
                    push(seg + eq + 1, seg + tail)
            else:
                word = part.strip(_WS)
                is_attr = word.lower() in self.cookie_attributes
                is_date_tail = word[:1].isdigit() and b" " in part
                if word and not is_attr and not is_date_tail:
                    push(seg + lead, seg + tail)
            seg = stop + 1

    def redact_bytes(self, text):
        hits = self.find(text)
        if not hits:
            return text
        out = bytearray()
        at = 0
        for start, end, i in hits:
            out += text[at:start]
            out += self.detectors[i].label
            at = end
        out += text[at:]
        return bytes(out)

    def redact(self, text):
        """``text`` (str) with every secret replaced."""
        raw = text.encode("utf-8", "surrogateescape")
        red = self.redact_bytes(raw)
        return text if red is raw else red.decode("utf-8", "surrogateescape")


def _merge(hits):
    hits.sort(key=lambda h: (h[0], h[2]))
    out = []
    for start, end, i in hits:
        if out and start < out[-1][1]:
            ls, le, li = out[-1]
            out[-1] = (ls, max(le, end), min(li, i))
        else:
            out.append((start, end, i))
    return out


_default = None


def default_redactor():
    global _default
    if _default is None:
        _default = Redactor()
    return _default


class RedactingFilter(logging.Filter):
    """Redacts a record's message, exception and stack text in place."""

    def __init__(self, name=""):
        super().__init__(name)
        self.redactor = default_redactor()

    def filter(self, record):
        r = self.redactor
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep its parts, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg = r.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = r.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = r.redact(record.stack_info)
        return True


def main():
    r = default_redactor()
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        body, nl = (line[:-1], b"\n") if line.endswith(b"\n") else (line, b"")
        out.write(r.redact_bytes(body) + nl)
        out.flush()


if __name__ == "__main__":
    main()
