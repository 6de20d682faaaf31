"""`python -m retrieval.parsing --serve`: the parser child (see IsolatedParser)."""

import sys

from retrieval.parsing import _serve

if sys.argv[1:] == ["--serve"]:
    sys.exit(_serve())
