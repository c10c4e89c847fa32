"""Shared inspection of executed notebooks for the notebook tests."""
import re

GLUE_REF = re.compile(r"\{glue:text\}`(\w+)")


def glue_keys(nb) -> tuple[set, set]:
    """(keys used by {glue:text} roles in markdown cells, keys glued by code cells) of an
    executed nbformat notebook."""
    used = {m for c in nb.cells if c.cell_type == "markdown" for m in GLUE_REF.findall(c.source)}
    glued = {o.metadata["scrapbook"]["name"] for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {})}
    return used, glued
