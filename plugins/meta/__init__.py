"""Built-in meta-learning plugins: task families and meta-strategies, registered like any plugin's."""

from __future__ import annotations

import engine
from engine import MetaStrategy, Registry, TaskFamily
from plugins.meta.csv_family import CsvFamily
from plugins.meta.families import Digits, Sinusoid
from plugins.meta.learners import FOMAML, MAML, MetaSGD, Pretrain, ProtoNet, Reptile, Scratch

__all__ = [
    "FAMILIES",
    "FOMAML",
    "MAML",
    "META_STRATEGIES",
    "CsvFamily",
    "Digits",
    "MetaSGD",
    "Pretrain",
    "ProtoNet",
    "Reptile",
    "Scratch",
    "Sinusoid",
    "stratagem_register_meta_strategies",
    "stratagem_register_task_families",
]

FAMILIES: tuple[type[TaskFamily], ...] = (Sinusoid, Digits, CsvFamily)
META_STRATEGIES: tuple[type[MetaStrategy], ...] = (
    MAML,
    FOMAML,
    MetaSGD,
    Reptile,
    ProtoNet,
    Pretrain,
    Scratch,
)


@engine.hookimpl
def stratagem_register_task_families(registry: Registry[type[TaskFamily]]) -> None:
    for family in FAMILIES:
        registry.add(family)


@engine.hookimpl
def stratagem_register_meta_strategies(registry: Registry[type[MetaStrategy]]) -> None:
    for strategy in META_STRATEGIES:
        registry.add(strategy)
