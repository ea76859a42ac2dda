"""Write the app's OpenAPI document to spec/openapi.json (checked by a test)."""

import json
from pathlib import Path

from rapport_server.app import create_app

target = Path(__file__).resolve().parents[1] / "spec" / "openapi.json"
target.write_text(json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n")
print(f"wrote {target}")
