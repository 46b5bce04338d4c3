"""CLI start-up: `reasonlab --help`, `plugins`, `validate` against `python -c "import pluggy"`.

Target: each under 1 s. Run: python benchmarks/startup.py
"""

import subprocess
import sys
from pathlib import Path

from _common import best_of, write_result

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.toml"
COMMANDS = {
    "import pluggy": [sys.executable, "-c", "import pluggy"],
    "reasonlab --help": [sys.executable, "-m", "reasonlab", "--help"],
    "reasonlab plugins": [sys.executable, "-m", "reasonlab", "plugins"],
    "reasonlab validate": [sys.executable, "-m", "reasonlab", "validate", str(RECIPE)],
}

results = {}
for name, command in COMMANDS.items():
    results[name] = best_of(lambda: subprocess.run(command, check=True, capture_output=True), repeat=5)
baseline = results["import pluggy"]
for name, seconds in results.items():
    print(f"{name:22s} {seconds:6.3f} s   x{seconds / baseline:5.1f} of 'import pluggy'   "
          f"{'OK' if seconds < 1.0 else 'OVER 1 s'}")
write_result("startup", {"seconds": results, "target_seconds": 1.0})
