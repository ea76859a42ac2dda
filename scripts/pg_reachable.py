"""Exit 0 when the PostgreSQL server of the SQLAlchemy URL in argv[1] accepts connections."""

import socket
import sys
from urllib.parse import urlsplit

url = urlsplit(sys.argv[1].replace("postgresql+asyncpg", "postgresql"))
try:
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 5432), timeout=2):
        pass
except OSError:
    sys.exit(1)
