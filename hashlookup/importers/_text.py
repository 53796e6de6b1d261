"""Format "text": plain digest lists and md5sum/sha1sum/sha256sum output.

Read by the C line parser of hashlookup.importers.digests (one call per 16 MiB chunk,
no Python object per digest).  One algorithm per file, detected from the
first digest's length; every record has just that digest and no size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hashlookup import algorithms
from hashlookup.importers import digests as _parse
from hashlookup.importers._records import RecordBatch, _Options

_ALGO_BY_WIDTH = algorithms.BY_WIDTH


def read(opts: _Options) -> Iterator[RecordBatch]:
    report = opts.report
    # (A UTF-8 byte-order mark is skipped by the line reader, as everywhere.)
    with opts.open() as f:
        for chunk in _parse.iter_parsed(
            f, None, name=opts.name, skip_invalid=opts.skip_invalid
        ):
            if chunk.invalid:
                report.invalid += chunk.invalid
            keys = chunk.keys
            n = keys.shape[0]
            if n == 0:
                continue
            algo = _ALGO_BY_WIDTH[keys.shape[1]]
            report.algorithm = algo
            for start in range(0, n, opts.batch_size):
                part = keys[start : start + opts.batch_size]
                batch = RecordBatch.empty(part.shape[0])
                setattr(batch, algo, part)
                setattr(batch, "has_" + algo, np.ones(part.shape[0], bool))
                yield batch
