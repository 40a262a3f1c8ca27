"""Queue groups, the registry's KV bucket and the config entities are named in proto/ only
(as the subjects are): a service that spells one as a literal is found here."""

from __future__ import annotations

import ast
from pathlib import Path

from proto import subjects
from proto.messages import ConfigChanged, ConfigEntity

REPO = Path(__file__).resolve().parents[3]


def _is_literal(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def offenders(tree: ast.AST) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg in ("queue", "entity") and _is_literal(kw.value):
                    out.append((node.lineno, f"{kw.arg}= literal"))
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("changed", "config_changed") and node.args and _is_literal(node.args[0]):
                out.append((node.lineno, f"{name}() with a literal entity"))
        if isinstance(node, ast.Assign) and _is_literal(node.value) and any(
                isinstance(t, ast.Name) and "QUEUE" in t.id.upper() for t in node.targets):
            out.append((node.lineno, "a queue group constant"))
        if isinstance(node, ast.Constant) and node.value == subjects.TRUNKS_BUCKET:
            out.append((node.lineno, "the trunks bucket name"))
    return sorted(out)


def test_no_queue_group_bucket_or_entity_literal_in_the_services() -> None:
    found = []
    for path in sorted((REPO / "services").rglob("*.py")):
        rel = path.relative_to(REPO)
        if "migrations" in rel.parts or "db" in rel.parts:
            continue  # table names are the database's, not the bus's
        for lineno, what in offenders(ast.parse(path.read_text(), filename=str(rel))):
            found.append(f"{rel}:{lineno}: {what}")
    assert not found, "name it in proto/ instead:\n" + "\n".join(found)


def test_the_check_is_not_vacuous() -> None:
    planted = ast.parse('await bus.subscribe(s, h, M, queue="config")\n'
                        'await bus.subscribe(s, h, M, queue=f"media-{region}")\n'
                        'await ctx.changed("accounts", a.id, a.id, "created")\n'
                        'ConfigChanged(entity="tracking_numbers", id="x")\n'
                        'bucket = "switchboard_registry_trunks"\n'
                        'QUEUE_GROUP = "config"\n')
    assert [n for n, _ in offenders(planted)] == [1, 2, 3, 4, 5, 6]


def test_queue_groups_are_per_region_tokens() -> None:
    assert subjects.media_queue("us1") == "media-us1" and subjects.signaling_queue("eu2") == "signaling-eu2"
    assert subjects.CONFIG_QUEUE == "config" and subjects.REGISTRY_QUEUE == "registry"


def test_an_entity_a_newer_config_adds_still_parses() -> None:
    ev = ConfigChanged.model_validate({"entity": "webhooks", "id": "wh_1"})
    assert ev.entity == "webhooks"
    assert ConfigChanged(entity=ConfigEntity.ACCOUNTS, id="a").model_dump()["entity"] == "accounts"
