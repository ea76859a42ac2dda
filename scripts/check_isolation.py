"""Check that a distribution installs and imports without the server stack.

Usage: python scripts/check_isolation.py rapport_protocol|rapport_client
Run inside a virtualenv that has only that distribution (and its own dependencies).
"""

import importlib
import importlib.metadata
import sys

FORBIDDEN = ("fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic", "asyncpg", "aiosqlite")

module = sys.argv[1]
installed = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
present = sorted(name for name in FORBIDDEN if name in installed)
if present:
    sys.exit(f"{module}: installing it pulled in {present}")
importlib.import_module(module)
loaded = sorted(name for name in FORBIDDEN if name in sys.modules)
if loaded:
    sys.exit(f"{module}: importing it loaded {loaded}")
for generic in ("server", "protocol", "client", "tests"):
    try:
        importlib.import_module(generic)
    except ImportError:
        continue
    sys.exit(f"a generic top-level module {generic!r} is importable")
print(f"{module}: installs and imports without {', '.join(FORBIDDEN)}")
