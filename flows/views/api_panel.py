"""The "API" panel of a published flow's page: ready-to-copy requests that run the flow, each
with the flow's real address (absolute, from the request) and slug, and example inputs made from
the published version's input fields."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from flows.models import Flow

EXAMPLES: dict[str, Any] = {"number": 1, "boolean": True, "json": {}}
TEXT_EXAMPLE = "Hello!"


@dataclass(frozen=True)
class Snippet:
    key: str  # the element ids' suffix
    title: str
    code: str


def example_inputs(graph: dict) -> dict[str, Any]:
    """A value of the right type for each field of the graph's input node."""
    for node in graph.get("nodes", []):
        if node.get("type") == "input":
            fields = (node.get("config") or {}).get("fields") or []
            return {f["name"]: EXAMPLES.get(f.get("type", "text"), TEXT_EXAMPLE) for f in fields}
    return {}


def _shell_quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def api_snippets(request: HttpRequest, flow: Flow) -> list[Snippet]:
    """curl, Python (httpx and openai) and JavaScript requests for the published version."""
    version = flow.published_version
    if version is None:
        return []
    base = request.build_absolute_uri("/").rstrip("/")
    runs_url = request.build_absolute_uri(reverse("flows:api-runs-create", args=[flow.slug]))
    payload = {"inputs": example_inputs(version.graph)}
    body = json.dumps(payload, ensure_ascii=False)
    message = json.dumps(TEXT_EXAMPLE)
    slug, url = json.dumps(flow.slug), json.dumps(runs_url)
    curl = (
        f"curl {runs_url} \\\n"
        '  -H "Authorization: Bearer $STUDIO_API_KEY" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d {_shell_quoted(body)}"
    )
    httpx_code = (
        "import os\n\nimport httpx\n\n"
        "response = httpx.post(\n"
        f"    {url},\n"
        '    headers={"Authorization": f"Bearer {os.environ[\'STUDIO_API_KEY\']}"},\n'
        f"    json={payload!r},\n"
        "    timeout=120,\n"
        ")\n"
        "response.raise_for_status()\n"
        'print(response.json()["outputs"])'
    )
    openai_code = (
        "import os\n\nfrom openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{base}/v1", api_key=os.environ["STUDIO_API_KEY"])\n'
        "reply = client.chat.completions.create(\n"
        f"    model={slug},\n"
        f'    messages=[{{"role": "user", "content": {message}}}],\n'
        ")\n"
        "print(reply.choices[0].message.content)"
    )
    fetch_code = (
        f"const response = await fetch({url}, {{\n"
        '  method: "POST",\n'
        "  headers: {\n"
        "    Authorization: `Bearer ${process.env.STUDIO_API_KEY}`,\n"
        '    "Content-Type": "application/json",\n'
        "  },\n"
        f"  body: JSON.stringify({body}),\n"
        "});\n"
        "const run = await response.json();\n"
        "console.log(run.outputs);"
    )
    return [
        Snippet("curl", "curl", curl),
        Snippet("httpx", "Python (httpx)", httpx_code),
        Snippet("openai", "Python (openai)", openai_code),
        Snippet("fetch", "JavaScript (fetch)", fetch_code),
    ]
