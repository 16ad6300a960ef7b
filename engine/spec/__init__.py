"""Study specifications: the model (:class:`SearchSpec`), reading and checking TOML, and resolving every
name against the loaded plugins (:func:`resolve`), all before anything is written."""

from __future__ import annotations

from engine.spec.competence import CompetenceSpec
from engine.spec.model import EvaluationSpec, MetaSpec, SearchSpec, TaskSpec, load_spec
from engine.spec.resolve import Plan, ResolvedTask, resolve

__all__ = [
    "CompetenceSpec",
    "EvaluationSpec",
    "MetaSpec",
    "Plan",
    "ResolvedTask",
    "SearchSpec",
    "TaskSpec",
    "load_spec",
    "resolve",
]
