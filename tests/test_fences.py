"""fences.unfenced: the one way a model's JSON reply loses its Markdown code fence (tool
arguments, the blend's split, the judge's and the helper's replies)."""

from __future__ import annotations

import pytest

from fourhosts_jupyter.fences import unfenced


@pytest.mark.parametrize(("reply", "inside"), [
    ('{"a": 1}', '{"a": 1}'),                         # no fence: as it is, stripped
    ('  {"a": 1}\n', '{"a": 1}'),
    ('```json\n{"a": 1}\n```', '{"a": 1}'),           # a tagged fence
    ('```JSON\n[1, 2]\n```\n', "[1, 2]"),             # any one-word tag
    ('```\n{"a": 1}\n```', '{"a": 1}'),               # an untagged fence
    ('```json{"a": 1}```', '{"a": 1}'),               # all on one line
    ('```json {"a": 1}\n```', '{"a": 1}'),            # the JSON begins on the fence line
    ("```", ""),
])
def test_unfenced_takes_what_is_inside_the_fence(reply, inside):
    assert unfenced(reply) == inside
