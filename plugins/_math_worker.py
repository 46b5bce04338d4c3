"""The math-verify checker process behind ``math_equiv``: one JSON request per line on
stdin (``[gold, predicted]``), one JSON ``true``/``false`` per line on stdout.

Started as ``python -m reasonlab_plugins._math_worker``: a fresh interpreter that never
re-imports its parent's main module (multiprocessing's spawn would).
"""

import json
import sys


def main() -> None:
    from math_verify import parse, verify

    sys.stdout.write("ready\n")  # the parent starts the clock of a check only after this
    sys.stdout.flush()

    def as_math(text: str) -> str:
        text = text.strip()
        return text if text.startswith("$") else f"${text}$"

    for line in sys.stdin:
        gold, predicted = json.loads(line)
        try:
            ok = bool(verify(parse(as_math(gold), parsing_timeout=None), parse(as_math(predicted), parsing_timeout=None),
                             timeout_seconds=None))
        except Exception:
            ok = False
        sys.stdout.write("true\n" if ok else "false\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
