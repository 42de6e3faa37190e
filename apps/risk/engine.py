"""Rule expressions: compiled once per (rule, version) with rule-engine, typed against the feature
table so a misspelt feature or an attempt to reach Python internals fails at save time with a
clear message, never at decision time."""

from __future__ import annotations

import logging
from functools import lru_cache

import rule_engine

from apps.risk.features import FEATURE_TYPES

_TYPES = {
    "float": rule_engine.DataType.FLOAT,
    "string": rule_engine.DataType.STRING,
    "boolean": rule_engine.DataType.BOOLEAN,
}
_CONTEXT = rule_engine.Context(
    type_resolver=rule_engine.type_resolver_from_dict({name: _TYPES[kind] for name, kind in FEATURE_TYPES.items()})
)
MAX_EXPRESSION_LENGTH = 2000
logger = logging.getLogger(__name__)


class ExpressionError(ValueError):
    """The expression does not compile, names an unknown feature or is not a yes/no question."""


def compile_expression(text: str) -> rule_engine.Rule:
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("The expression is empty.")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"The expression is longer than {MAX_EXPRESSION_LENGTH} characters.")
    if "$" in text:
        # rule-engine's $-symbols read engine internals (e.g. regex groups); rules only need features.
        raise ExpressionError("Symbols starting with $ are not allowed.")
    try:
        rule = rule_engine.Rule(text, context=_CONTEXT)
    except rule_engine.errors.SymbolResolutionError as exc:
        raise ExpressionError(f"Unknown feature {exc.symbol_name!r}.") from None
    except rule_engine.errors.AttributeResolutionError as exc:
        raise ExpressionError(f"Attribute {exc.attribute_name!r} cannot be used in a rule.") from None
    except rule_engine.errors.EngineError as exc:
        raise ExpressionError(f"Invalid expression: {exc.message}") from None
    result_type = rule.statement.expression.result_type
    if result_type not in (rule_engine.DataType.BOOLEAN, rule_engine.DataType.UNDEFINED):
        raise ExpressionError("The expression must be a yes/no condition (e.g. `amount >= 1000000`).")
    return rule


@lru_cache(maxsize=1024)
def compiled(rule_id: int, version: int, text: str) -> rule_engine.Rule:
    """The compiled expression of one rule version (the key changes whenever the rule does)."""
    return compile_expression(text)


def matches(rule_id: int, version: int, text: str, features: dict) -> bool:
    try:
        return bool(compiled(rule_id, version, text).matches(features))
    except rule_engine.errors.EvaluationError:
        # e.g. a division by zero inside the expression: the rule cannot say yes.
        return False
    except ExpressionError:
        # A stored expression that no longer compiles (e.g. a feature was renamed since it was
        # saved) must not fail every decision: it cannot match, and saving it again reports why.
        logger.warning("risk rule %s v%s no longer compiles; treated as not matching", rule_id, version)
        return False
