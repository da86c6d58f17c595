"""The project's command line: the pipeline library's (``mlsteps``), run on this project.

python src/main.py                                   # every step, local environment
python src/main.py --step train_model --environment dev
python src/main.py --help                            # every option and command
"""

import os
from pathlib import Path

# The project is the folder above this one (its config/ and src/), wherever the command is run from.
os.environ["PIPELINE_PROJECT_ROOT"] = str(Path(__file__).resolve().parents[1])

from mlsteps.cli import main

if __name__ == "__main__":
    main()
