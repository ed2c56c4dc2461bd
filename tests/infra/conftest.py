"""Make the helper modules (infra_lake, infra_ddl) importable from the tests beside it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
