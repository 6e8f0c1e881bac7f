"""Answers render as Markdown in the chat, and hostile text stays inert: raw HTML is shown as
text, `javascript:` links lose their target, images are not loaded."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

HOSTILE = (
    'see <img src="/x.png" onerror="window.pwned = 1"> and '
    "[click me](javascript:window.pwned=2) or ![pixel](https://tracker.example/p.png) "
    "<script>window.pwned = 3</script> **bold**"
)

RICH = """Steps:

1. `make up`
2. open the chat

| engine | where |
|---|---|
| cpu | here |

```python
print("hi")
```

[docs](https://example.com/docs)"""


def test_a_hostile_answer_is_rendered_inert(page, owner, echo_model, make_flow):
    make_flow(echo_model, max_tokens=200)
    log_in(page, "olive", PASSWORD)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/chat/assistant/")

    page.get_by_label("Message").fill(HOSTILE)
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".bubble.assistant").last
    expect(answer.locator(".meta")).to_contain_text("Done")

    text = answer.locator(".text")
    expect(text.locator("strong")).to_have_text("bold")
    assert text.locator("img, script").count() == 0
    # The raw HTML is there to read, as text.
    expect(text).to_contain_text('<img src="/x.png" onerror="window.pwned = 1">')
    link = text.get_by_text("click me")
    assert link.get_attribute("href") in (None, "")
    assert page.evaluate("window.pwned") is None
    assert not [url for url in requested if "x.png" in url or "tracker.example" in url]


def test_markdown_renders_lists_tables_code_and_safe_links(page, owner, echo_model, make_flow):
    make_flow(echo_model)
    log_in(page, "olive", PASSWORD)
    page.goto("/chat/assistant/")
    page.wait_for_function("window.studioMarkdown !== undefined")

    html = page.evaluate(
        "(raw) => { const el = document.createElement('div');"
        " window.studioMarkdown.render(el, raw); return el.innerHTML; }",
        RICH,
    )

    assert "<ol>" in html and "<code>make up</code>" in html
    assert "<table>" in html and "<td>cpu</td>" in html
    assert '<pre><code class="language-python">' in html
    assert 'href="https://example.com/docs"' in html
    assert 'rel="noopener noreferrer nofollow"' in html and 'target="_blank"' in html
