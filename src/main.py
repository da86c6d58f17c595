"""The project's command line: the pipeline library's (``mlsteps``), run on this project.

python src/main.py                                   # every step, local environment
python src/main.py --step train_model --environment dev
python src/main.py --help                            # every option and command
"""

import os
import sys
from pathlib import Path

# The project is the folder above this one (its config/ and src/), wherever the command is run from.
ROOT = Path(__file__).resolve().parents[1]
os.environ["PIPELINE_PROJECT_ROOT"] = str(ROOT)

try:
    from mlsteps.cli import main
except ModuleNotFoundError as missing:
    # Another Python than the project's (`python src/main.py` outside the virtualenv): the project's own, if made.
    python = ROOT / ".venv" / "bin" / "python"
    if missing.name != "mlsteps" or os.environ.get("PIPELINE_REEXEC"):
        raise
    if not python.exists():
        print(f"error: {sys.executable} has no mlsteps and {python} does not exist: run `make setup`", file=sys.stderr)
        sys.exit(2)
    os.environ["PIPELINE_REEXEC"] = "1"
    os.execv(python, [str(python), *sys.argv])

if __name__ == "__main__":
    main()
