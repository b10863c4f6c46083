"""Prompt templates: the variables they name and how they render (pure, no IO).

The registry (``/api/v1/prompts``) stores versions of these templates and the SDK
(``sightline.get_prompt``) renders them in the application, so both import this package: it
loads nothing but the standard library.
"""

from sightline.prompts._template import (
    KINDS,
    LABEL_PATTERN,
    NAME_PATTERN,
    TEMPLATE_TYPES,
    MissingVariables,
    render,
    template_type,
    validate_template,
    variables_of,
)

__all__ = [
    "KINDS",
    "LABEL_PATTERN",
    "NAME_PATTERN",
    "TEMPLATE_TYPES",
    "MissingVariables",
    "render",
    "template_type",
    "validate_template",
    "variables_of",
]
