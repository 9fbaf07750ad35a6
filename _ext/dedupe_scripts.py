"""Sphinx extension: drop script tags that a page would include twice.

sphinx-thebe (pulled in by Jupyter Book 1.x) adds its inline configuration script twice to every
page, so browsers log "Identifier 'THEBE_JS_URL' has already been declared". This keeps the first
of identical scripts.
"""


def _dedupe(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for js in context.get("script_files", []):
        attributes = getattr(js, "attributes", {}) or {}
        name = getattr(js, "filename", js) or ""  # the same inline script comes as None and as ""
        key = (str(name), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
